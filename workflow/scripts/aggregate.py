"""All judged answers into the samples table, bootstrap summaries and usage tables (rule aggregate)."""

from inoculate.aggregate import (
    differences_table,
    judge_usage_table,
    load_samples,
    question_table,
    summary_table,
    training_table,
)
from inoculate.io import atomic_path
from inoculate.jobs import job


def write_csv(table, path):
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


with job(snakemake) as log:
    out, analysis = snakemake.output, snakemake.params.analysis
    samples = load_samples(snakemake.input.judgments)
    write_csv(samples, out.samples)
    summary = summary_table(samples, analysis)
    write_csv(summary, out.summary)
    write_csv(differences_table(samples, analysis), out.differences)
    write_csv(question_table(samples, analysis), out.questions)
    usage = judge_usage_table(snakemake.input.usage)
    write_csv(usage, out.judge_usage)
    write_csv(training_table(snakemake.input.adapters), out.training)
    cost = usage["cost_usd"].iloc[-1] if len(usage) else 0.0
    log.info("%d answers, %d summary rows; judge cost of the study: $%.4f", len(samples), len(summary), cost)
