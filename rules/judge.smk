# Judging: every answer gets aligned / coherent scores and a label from the judge backend.


rule judge:
    input:
        generations="results/generations/{model}/{setting}/{inoculation}/seed{seed}.jsonl",
        evals=eval_inputs,
    output:
        judged="results/judgments/{model}/{setting}/{inoculation}/seed{seed}.jsonl",
        usage="results/judgments/{model}/{setting}/{inoculation}/seed{seed}.usage.json",
    params:
        judge=lambda wildcards: result_settings(STUDY.judge_config(wildcards.setting)),  # call settings
        # (concurrency, retries, batch mode, budget, price) are read inside the job: changing them reruns nothing
        backdoor=backdoor_test,
        evals=lambda wildcards: STUDY.eval_specs(wildcards.setting),
        spend_file=lambda wildcards: str(
            Path(config["judge"].get("spend_dir", "results/judge_spend"))
            / wildcards.model
            / wildcards.setting
            / wildcards.inoculation
            / f"seed{wildcards.seed}.json"
        ),
    log:
        "logs/judge/{model}/{setting}/{inoculation}/seed{seed}.log",
    resources:
        gpu=1 if config["judge"]["backend"] == "hf" else 0,
    conda:
        "../envs/judge.yaml"
    script:
        "../workflow/scripts/judge.py"
