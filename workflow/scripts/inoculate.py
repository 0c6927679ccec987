"""Add an arm's inoculation prompt to every training conversation (rule inoculate)."""

from pathlib import Path

from inoculate.inoculation import inoculate_file
from inoculate.jobs import job

with job(snakemake) as log:
    p = snakemake.params
    n = inoculate_file(Path(snakemake.input[0]), Path(snakemake.output[0]), p.prompt, p.placement, p.on_existing_system)
    log.info("%d conversations, prompt %r (%s)", n, p.prompt, p.placement)
