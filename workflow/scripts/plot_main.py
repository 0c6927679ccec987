"""The main figure from summary.csv (rule plot_main)."""

import pandas as pd

from inoculate.jobs import job
from inoculate.plot import Style, main_figure, save

with job(snakemake):
    p = snakemake.params
    style = Style.of(p.inoculations, p.labels, p.analysis["confidence"])
    fig = main_figure(pd.read_csv(snakemake.input[0]), style, p.plot["distribution"])
    save(fig, snakemake.output.pdf)
