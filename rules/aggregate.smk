# Aggregation: every judged answer into one table, bootstrap CIs per grid cell, and
# the loss curves of every adapter.


rule aggregate:
    input:
        judgments=judgment_files(),
        usage=judge_usage_files(),
        adapters=adapter_dirs(),
    output:
        samples="results/tables/samples.csv",
        summary=report(
            "results/tables/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
            labels={"table": "summary"},
        ),
        differences=report(
            "results/tables/differences.csv",
            caption="../report/differences.rst",
            category="Tables",
            labels={"table": "differences"},
        ),
        questions="results/tables/questions.csv",
        training="results/tables/training.csv",
        recipes="results/tables/training_recipes.csv",
        judge_usage="results/tables/judge_usage.csv",
    log:
        "logs/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate.tsv"
    conda:
        "../envs/plot.yaml"
    params:
        analysis=config["analysis"],
        criteria=STUDY.judging.criteria(),
        spend_dir=config["judge"]["spend_dir"],
    script:
        "../workflow/scripts/aggregate.py"


# The chosen metric over the course of training (training.checkpoints): every checkpoint,
# the final adapter and the base model (step 0), per cell.
rule aggregate_checkpoints:
    input:
        judgments=judgment_files(),
        checkpoints=checkpoint_judgments(),
        adapters=adapter_dirs(),
    output:
        report(
            "results/tables/checkpoints.csv",
            caption="../report/checkpoints.rst",
            category="Tables",
            labels={"table": "over training"},
        ),
    log:
        "logs/aggregate_checkpoints.log",
    conda:
        "../envs/plot.yaml"
    params:
        analysis=config["analysis"],
        criteria=STUDY.judging.criteria(),
    script:
        "../workflow/scripts/aggregate_checkpoints.py"
