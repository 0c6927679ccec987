# Judging: every answer gets aligned / coherent scores and a label from the judge backend.


rule judge:
    input:
        generations="results/generations/{model}/{setting}/{inoculation}/seed{seed}.jsonl",
        evals=eval_inputs,
    output:
        judged="results/judgments/{model}/{setting}/{inoculation}/seed{seed}.jsonl",
        usage="results/judgments/{model}/{setting}/{inoculation}/seed{seed}.usage.json",
    params:
        judge=config["judge"],
        evals=lambda wildcards: STUDY.eval_specs(wildcards.setting),
    log:
        "logs/judge/{model}/{setting}/{inoculation}/seed{seed}.log",
    conda:
        "../envs/judge.yaml"
    script:
        "../workflow/scripts/judge.py"
