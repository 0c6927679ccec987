"""The other figures of a study (rule plot_figures)."""

import pandas as pd

from inoculate.jobs import job
from inoculate.plot import (
    Style,
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
    style = Style.of(p.inoculations, p.labels, p.analysis["confidence"])
    summary = pd.read_csv(snakemake.input.summary)
    save(distribution_figure(summary, style), out.distributions)
    save(trait_figure(summary, style), out.trait)
    wanted = {"inoculation", "condition", "aligned", "coherent", "question_id", "question"}
    samples = pd.read_csv(snakemake.input.samples, usecols=lambda c: c in wanted)
    texts = samples.drop_duplicates("question_id").set_index("question_id")["question"].to_dict()
    save(question_heatmap(pd.read_csv(snakemake.input.questions), style, texts), out.questions)
    criterion = Criterion.from_analysis(p.analysis)
    save(scatter_figure(samples, style, criterion, p.plot["condition"]), out.scatter)
    save(loss_figure(pd.read_csv(snakemake.input.training), style), out.loss)
