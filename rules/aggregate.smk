# Aggregation: every judged answer into one table, bootstrap CIs per grid cell, and
# the loss curves of every adapter.


rule aggregate:
    input:
        judgments=judgment_files(),
        usage=judge_usage_files(),
        adapters=adapter_dirs(),
    output:
        samples="results/tables/samples.csv",
        summary="results/tables/summary.csv",
        training="results/tables/training.csv",
        judge_usage="results/tables/judge_usage.csv",
    params:
        analysis=config["analysis"],
    log:
        "logs/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate.tsv"
    conda:
        "../envs/plot.yaml"
    script:
        "../workflow/scripts/aggregate.py"
