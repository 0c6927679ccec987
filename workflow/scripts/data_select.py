"""Check a setting's dataset line by line and copy it into results/data (rule data_select)."""

from pathlib import Path

from inoculate.data import select_dataset
from inoculate.jobs import job

with job(snakemake) as log:
    n = select_dataset(Path(snakemake.params.path), Path(snakemake.output[0]))
    log.info("%d conversations from %s", n, snakemake.params.path)
