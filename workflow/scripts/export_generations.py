"""Write model_generations.csv for one adapter (rule export_generations)."""

from pathlib import Path

from inoculate.export import model_generations_csv
from inoculate.jobs import job

with job(snakemake) as log:
    n = model_generations_csv(Path(snakemake.input[0]), Path(snakemake.output[0]), snakemake.params.condition)
    log.info("%d answers", n)
