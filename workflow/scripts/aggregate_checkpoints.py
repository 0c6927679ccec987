"""The summary at every checkpoint, the final adapter and the base model (rule aggregate_checkpoints)."""

from inoculate.aggregate import checkpoint_table
from inoculate.io import write_csv
from inoculate.jobs import job

with job(snakemake) as log:
    table = checkpoint_table(
        snakemake.input.judgments,
        snakemake.input.checkpoints,
        snakemake.input.adapters,
        snakemake.params.analysis,
        snakemake.params.criteria,
    )
    write_csv(snakemake.output[0], table)
    log.info("%d rows over %d checkpoints", len(table), table["checkpoint"].nunique())
