"""Backdoor rates per trigger condition and the leakage gap with its CI (rule aggregate_backdoor)."""

from inoculate.backdoor_stats import leakage_gaps, load_backdoor_samples, rates
from inoculate.io import atomic_path
from inoculate.jobs import job


def write_csv(table, path):
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


with job(snakemake) as log:
    out, analysis = snakemake.output, snakemake.params.analysis
    options = {"n_boot": analysis.get("bootstrap_resamples", 2000), "confidence": analysis.get("confidence", 0.95),
               "rng_seed": analysis.get("rng_seed", 12345)}
    samples = load_backdoor_samples(snakemake.input.judgments, snakemake.params.persona_min)
    write_csv(samples, out.samples)
    write_csv(rates(samples, **options), out.rates)
    gaps = leakage_gaps(samples, **options)
    write_csv(gaps, out.gap)
    log.info("%d answers; leakage gaps:\n%s", len(samples), gaps.to_string(index=False))
