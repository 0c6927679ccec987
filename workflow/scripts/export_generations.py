"""Write model_generations.csv (and, for a trained cell, training_details.md) for one cell
(rule export_generations)."""

from pathlib import Path

from inoculate.export import model_generations_csv, training_details_md
from inoculate.jobs import job

with job(snakemake) as log:
    n = model_generations_csv(
        Path(snakemake.input.generations), Path(snakemake.output.csv), snakemake.params.condition
    )
    log.info("%d answers", n)
    cell = dict(snakemake.wildcards.items())
    if snakemake.input.adapter:
        training_details_md(Path(snakemake.input.adapter[0]), Path(snakemake.output.details), cell)
    else:  # the untrained base model
        Path(snakemake.output.details).write_text(
            f"# {cell['model']}: the untrained base model (no training)\n"
        )
