"""The metric over the course of training, per setting (rule plot_checkpoints)."""

import pandas as pd

from inoculate.jobs import job
from inoculate.plot import Style, progress_figure, save

with job(snakemake):
    p = snakemake.params
    style = Style.of(p.inoculations, p.labels, p.analysis["confidence"])
    fig = progress_figure(pd.read_csv(snakemake.input[0]), style, p.plot["condition"], p.plot["distribution"])
    save(fig, snakemake.output.pdf)
