# Judging: every answer gets aligned / coherent scores and a label from the judge backend.


rule judge:
    input:
        "results/generations/{setting}/{inoculation}/seed{seed}.jsonl",
    output:
        "results/judgments/{setting}/{inoculation}/seed{seed}.jsonl",
    params:
        judge=config["judge"],
    log:
        "logs/judge/{setting}/{inoculation}/seed{seed}.log",
    conda:
        "../envs/judge.yaml"
    script:
        "../workflow/scripts/judge.py"
