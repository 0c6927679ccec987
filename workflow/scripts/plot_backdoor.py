"""The backdoor figure: four trigger conditions per arm, with the leakage gap (rule plot_backdoor)."""

import pandas as pd

from inoculate.jobs import job
from inoculate.plot import backdoor_figure, save

with job(snakemake):
    fig = backdoor_figure(
        pd.read_csv(snakemake.input.rates), pd.read_csv(snakemake.input.gap), snakemake.params.inoculations
    )
    save(fig, snakemake.output.pdf)
