# Aggregation: every judged answer into one table, bootstrap CIs per grid cell, and
# the loss curves of every adapter.


rule aggregate:
    input:
        judgments=judgment_files(),
        usage=judge_usage_files(),
        adapters=adapter_dirs(),
    output:
        samples=f"{STUDY_DIR}/tables/samples.csv",
        summary=report(
            f"{STUDY_DIR}/tables/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
            labels={"table": "summary"},
        ),
        differences=report(
            f"{STUDY_DIR}/tables/differences.csv",
            caption="../report/differences.rst",
            category="Tables",
            labels={"table": "differences"},
        ),
        questions=f"{STUDY_DIR}/tables/questions.csv",
        training=f"{STUDY_DIR}/tables/training.csv",
        recipes=f"{STUDY_DIR}/tables/training_recipes.csv",
        judge_usage=f"{STUDY_DIR}/tables/judge_usage.csv",
    log:
        f"{LOG_DIR}/aggregate.log",
    benchmark:
        f"{STUDY_DIR}/benchmarks/aggregate.tsv"
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
            f"{STUDY_DIR}/tables/checkpoints.csv",
            caption="../report/checkpoints.rst",
            category="Tables",
            labels={"table": "over training"},
        ),
    log:
        f"{LOG_DIR}/aggregate_checkpoints.log",
    conda:
        "../envs/plot.yaml"
    params:
        analysis=config["analysis"],
        criteria=STUDY.judging.criteria(),
    script:
        "../workflow/scripts/aggregate_checkpoints.py"
