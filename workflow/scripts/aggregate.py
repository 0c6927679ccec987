"""All judged answers into the samples table, bootstrap summaries and usage tables (rule aggregate)."""

from inoculate.aggregate import (
    differences_table,
    judge_usage_table,
    load_samples,
    question_table,
    recipe_table,
    summary_table,
    training_table,
)
from inoculate.io import write_csv
from inoculate.jobs import job

with job(snakemake) as log:
    out, analysis, criteria = snakemake.output, snakemake.params.analysis, snakemake.params.criteria
    samples = load_samples(snakemake.input.judgments)
    write_csv(out.samples, samples)
    summary = summary_table(samples, analysis, criteria)
    write_csv(out.summary, summary)
    write_csv(out.differences, differences_table(samples, analysis, criteria=criteria))
    write_csv(out.questions, question_table(samples, analysis, criteria))
    usage = judge_usage_table(snakemake.input.usage, snakemake.params.spend_dir)
    write_csv(out.judge_usage, usage)
    write_csv(out.training, training_table(snakemake.input.adapters))
    write_csv(out.recipes, recipe_table(snakemake.input.adapters))
    cost = usage["cost_usd"].iloc[-1] if len(usage) else 0.0
    log.info(
        "%d answers, %d summary rows; judge cost of the study over all its runs: $%.4f",
        len(samples),
        len(summary),
        cost,
    )
