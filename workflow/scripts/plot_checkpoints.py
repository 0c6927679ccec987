"""The metric over the course of training, per setting (rule plot_checkpoints)."""

import pandas as pd

from inoculate.jobs import job
from inoculate.plot import progress_figure, save

with job(snakemake):
    plot = snakemake.params.plot
    fig = progress_figure(
        pd.read_csv(snakemake.input[0]),
        snakemake.params.inoculations,
        plot["condition"],
        plot["distribution"],
    )
    save(fig, snakemake.output.pdf)
