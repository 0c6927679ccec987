# Inoculation-prompting studies as a DAG: models x settings x inoculations x seeds.
# Usage: snakemake --cores 8 results/figures/main.pdf   (see README.md)

from pathlib import Path

from snakemake.utils import min_version

min_version("9.20")  # as pyproject.toml: snakemake>=9.20,<10


# Found from the workflow's folder, so that `snakemake -d DIR` works from anywhere.
configfile: str(Path(workflow.basedir) / "config" / "config.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"


# Every run records the config it resolved to (all layers and --config), beside its results.
onstart:
    check_keys(workflow.dag.needrun_jobs())
    write_resolved(config, workflow.configfiles, f"{STUDY_DIR}/config.resolved.yaml")
    PATHS.write_index(f"{STUDY_DIR}/cells.csv")
    record_run()


# Cheap jobs run where Snakemake runs, not as cluster jobs (no effect on a local run).
localrules:
    all,
    toy_data,
    data_download,
    data_decrypt,
    data_select,
    training_set,
    aggregate,
    aggregate_checkpoints,
    plot_checkpoints,
    plot_main,
    plot_figures,
    export_generations,
    exports,
    model_card,
    model_cards,
    inspect_log,
    inspect_log_checkpoint,
    inspect_logs,
    training_sets,
    train_api,
    generate_api,
    generate_api_checkpoint,
    mix,
    aggregate_backdoor,
    plot_backdoor,


# A judge that calls an API waits on the network: run it locally. A local-model judge
# (backend hf) needs a GPU: submit it like the other model jobs.
if config["judge"]["backend"] != "hf":

    localrules:
        judge,
        judge_checkpoint,
        judge_calibration,


include: "rules/toy.smk"
include: "rules/data.smk"
include: "rules/training_set.smk"
include: "rules/train.smk"
include: "rules/generate.smk"
include: "rules/api.smk"
include: "rules/backdoor.smk"
include: "rules/judge.smk"
include: "rules/aggregate.smk"
include: "rules/plot.smk"
include: "rules/export.smk"


# Params compared as values, not as the key order of the config files they came from.
canonical_params(workflow.rules)


rule all:
    default_target: True
    input:
        final_targets(),
