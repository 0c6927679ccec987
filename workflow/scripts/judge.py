"""Judge every answer of one generations file (rule judge)."""

from pathlib import Path

from inoculate.jobs import job
from inoculate.judging import judge_file

with job(snakemake):
    judge_file(
        Path(snakemake.input.generations),
        Path(snakemake.output.judged),
        snakemake.params.judge,
        snakemake.params.evals,
        Path(snakemake.output.usage),
        Path(snakemake.params.spend_file),
        (snakemake.params.backdoor or {}).get("trigger"),
    )
