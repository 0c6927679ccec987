"""All judged answers into the samples table and the bootstrap summary (rule aggregate)."""

from inoculate.aggregate import judge_usage_table, load_samples, summary_table, training_table
from inoculate.io import atomic_path
from inoculate.jobs import job

with job(snakemake) as log:
    samples = load_samples(snakemake.input.judgments)
    summary = summary_table(samples, snakemake.params.analysis)
    with atomic_path(snakemake.output.samples) as tmp:
        samples.to_csv(tmp, index=False)
    with atomic_path(snakemake.output.summary) as tmp:
        summary.to_csv(tmp, index=False)
    usage = judge_usage_table(snakemake.input.usage)
    with atomic_path(snakemake.output.judge_usage) as tmp:
        usage.to_csv(tmp, index=False)
    log.info("judge cost of the study: $%.4f", usage["cost_usd"].sum())
    training = training_table(snakemake.input.adapters)
    with atomic_path(snakemake.output.training) as tmp:
        training.to_csv(tmp, index=False)
    log.info("%d answers, %d summary rows", len(samples), len(summary))
