"""The other figures of a study (rule plot_figures)."""

import pandas as pd

from inoculate.jobs import job
from inoculate.plot import (
    distribution_figure,
    loss_figure,
    question_heatmap,
    save,
    scatter_figure,
    trait_figure,
)
from inoculate.stats import Criterion

with job(snakemake):
    p, out = snakemake.params, snakemake.output
    condition = p.plot["condition"]
    summary = pd.read_csv(snakemake.input.summary)
    save(distribution_figure(summary, p.inoculations, condition), out.distributions)
    save(trait_figure(summary, p.inoculations, condition), out.trait)
    save(question_heatmap(pd.read_csv(snakemake.input.questions), p.inoculations, condition), out.questions)
    samples = pd.read_csv(
        snakemake.input.samples, usecols=lambda c: c in {"inoculation", "condition", "aligned", "coherent"}
    )
    save(scatter_figure(samples, p.inoculations, Criterion.from_analysis(p.analysis), condition), out.scatter)
    save(loss_figure(pd.read_csv(snakemake.input.training), p.inoculations), out.loss)
