# Judging: every answer gets aligned / coherent scores and a label from the judge backend.


rule judge:
    input:
        generations=generations_input,
        evals=eval_inputs,
    output:
        judged="results/judgments/{model}/{setting}/{inoculation}/{recipe}/seed{seed}.jsonl",
        usage="results/judgments/{model}/{setting}/{inoculation}/{recipe}/seed{seed}.usage.json",
    log:
        "logs/judge/{model}/{setting}/{inoculation}/{recipe}/seed{seed}.log",
    conda:
        JUDGE_ENV
    resources:
        gpu=1 if config["judge"]["backend"] == "hf" else 0,
    params:
        judge=lambda wildcards: result_settings(STUDY.judging.judge_for(wildcards.setting)),  # call settings
        # (concurrency, retries, batch mode, budget, price) are read inside the job: changing them reruns nothing
        backdoor=backdoor_test,
        evals=lambda wildcards: STUDY.data.eval_specs(wildcards.setting),
        spend_file=spend_file,
    script:
        "../workflow/scripts/judge.py"


use rule judge as judge_checkpoint with:
    input:
        generations=generations_input,
        evals=eval_inputs,
    output:
        judged="results/judgments/{model}/{setting}/{inoculation}/{recipe}/seed{seed}/checkpoint_{checkpoint}.jsonl",
        usage="results/judgments/{model}/{setting}/{inoculation}/{recipe}/seed{seed}/checkpoint_{checkpoint}.usage.json",
    log:
        "logs/judge/{model}/{setting}/{inoculation}/{recipe}/seed{seed}/checkpoint_{checkpoint}.log",
    params:
        judge=lambda wildcards: result_settings(STUDY.judging.judge_for(wildcards.setting)),
        backdoor=backdoor_test,
        evals=lambda wildcards: STUDY.data.eval_specs(wildcards.setting),
        spend_file=spend_file,


# How the study's judge agrees with the published one (gpt-4o-2024-08-06) on answers whose
# published scores are known; part of `all` when the judge is another one.
rule judge_calibration:
    input:
        files=calibration_inputs,
    output:
        table=report(
            f"{STUDY_DIR}/tables/judge_calibration.csv",
            caption="../report/judge_calibration.rst",
            category="Tables",
            labels={"table": "judge calibration"},
        ),
        judged=f"{STUDY_DIR}/calibration/judged.csv",
        figure=f"{STUDY_DIR}/figures/judge_calibration.pdf",
        png=report(
            f"{STUDY_DIR}/figures/judge_calibration.png",
            caption="../report/judge_calibration.rst",
            category="Figures",
            labels={"figure": "judge calibration"},
        ),
    log:
        f"{LOG_DIR}/judge_calibration.log",
    conda:
        JUDGE_ENV
    params:
        judge=lambda wildcards: result_settings(config["judge"]),
        eval=STUDY.judging.calibration_eval(),
        per_file=config["calibration"]["per_file"],
        seed=config["calibration"]["seed"],
        analysis=config["analysis"],
    script:
        "../workflow/scripts/judge_calibration.py"
