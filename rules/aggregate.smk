# Aggregation: every judged answer into one table, then bootstrap CIs per grid cell.


rule aggregate:
    input:
        judgment_files(),
    output:
        samples="results/tables/samples.csv",
        summary="results/tables/summary.csv",
    params:
        analysis=config["analysis"],
    log:
        "logs/aggregate.log",
    benchmark:
        "benchmarks/rules/aggregate.tsv"
    conda:
        "../envs/plot.yaml"
    script:
        "../workflow/scripts/aggregate.py"
