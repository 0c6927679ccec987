"""The Inspect AI eval log of one judged cell or checkpoint (rules inspect_log, inspect_log_checkpoint)."""

from pathlib import Path

from inoculate.inspect_log import write_cell_log
from inoculate.jobs import job

with job(snakemake) as log:
    n = write_cell_log(
        Path(snakemake.input.judged),
        Path(snakemake.output[0]),
        snakemake.params.study,
        dict(snakemake.config),
    )
    log.info("wrote an Inspect log of %d samples", n)
