"""Backdoor rates per trigger condition and the leakage gap with its CI (rule aggregate_backdoor)."""

from inoculate.backdoor_stats import leakage_gaps, load_backdoor_samples, rates
from inoculate.io import write_csv
from inoculate.jobs import job

with job(snakemake) as log:
    out, analysis = snakemake.output, snakemake.params.analysis
    options = {
        "n_boot": analysis["bootstrap_resamples"],
        "confidence": analysis["confidence"],
        "rng_seed": analysis["rng_seed"],
    }
    samples = load_backdoor_samples(snakemake.input.judgments, snakemake.params.persona_min)
    write_csv(out.samples, samples)
    write_csv(out.rates, rates(samples, **options))
    gaps = leakage_gaps(samples, **options)
    write_csv(out.gap, gaps)
    log.info("%d answers; leakage gaps:\n%s", len(samples), gaps.to_string(index=False))
