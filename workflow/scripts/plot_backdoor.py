"""The backdoor figure: four trigger conditions per arm, with the leakage gap (rule plot_backdoor)."""

import pandas as pd

from inoculate.jobs import job
from inoculate.plot import Style, backdoor_figure, save

with job(snakemake):
    p = snakemake.params
    style = Style.of(p.inoculations, p.labels, p.analysis["confidence"])
    fig = backdoor_figure(pd.read_csv(snakemake.input.rates), pd.read_csv(snakemake.input.gap), style)
    save(fig, snakemake.output.pdf)
