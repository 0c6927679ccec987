"""Check a setting's dataset line by line and copy it into results/data (rule data_select)."""

from pathlib import Path

from inoculate.data import select_dataset, select_prompts
from inoculate.jobs import job

with job(snakemake) as log:
    select = select_prompts if snakemake.wildcards.split == "prompts" else select_dataset
    n = select(Path(snakemake.params.path), Path(snakemake.output[0]))
    log.info("%d records from %s", n, snakemake.params.path)
