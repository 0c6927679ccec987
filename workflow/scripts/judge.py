"""Judge every answer of one generations file (rule judge)."""

from pathlib import Path

from inoculate.jobs import job
from inoculate.judges import with_call_settings
from inoculate.judging import judge_file

with job(snakemake):
    judge_file(
        Path(snakemake.input.generations),
        Path(snakemake.output.judged),
        with_call_settings(snakemake.params.judge, snakemake.config["judge"]),
        snakemake.params.evals,
        Path(snakemake.output.usage),
        Path(snakemake.params.spend_file),
        (snakemake.params.backdoor or {}).get("trigger"),
    )
