"""The main figure from summary.csv (rule plot_main)."""

import pandas as pd

from inoculate.jobs import job
from inoculate.plot import main_figure, save

with job(snakemake):
    summary = pd.read_csv(snakemake.input[0])
    plot = snakemake.params.plot
    fig = main_figure(summary, snakemake.params.inoculations, plot["condition"], plot["distribution"])
    save(fig, snakemake.output.pdf)
