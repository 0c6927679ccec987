# Inoculation-prompting studies as a DAG: settings x inoculations x seeds.
# Usage: snakemake --cores 8 results/figures/main.pdf   (see README.md)

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/toy.smk"
include: "rules/data.smk"
include: "rules/inoculate.smk"
include: "rules/train.smk"
include: "rules/generate.smk"
include: "rules/judge.smk"
include: "rules/aggregate.smk"
include: "rules/plot.smk"
include: "rules/export.smk"


rule all:
    input:
        "results/figures/main.pdf",
        "results/figures/distributions.pdf",
        "results/tables/summary.csv",
    default_target: True
