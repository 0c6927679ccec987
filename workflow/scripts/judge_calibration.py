"""The study's judge on answers with published scores, and how the two agree (rule judge_calibration)."""

from pathlib import Path

from inoculate.calibration import (
    judge_name,
    judge_prompts_by_question,
    judge_sample,
    sample_answers,
    write_calibration,
)
from inoculate.jobs import job
from inoculate.judges import with_call_settings

with job(snakemake) as log:
    judge = with_call_settings(snakemake.params.judge, snakemake.config["judge"])
    sample = sample_answers(
        [Path(f) for f in snakemake.input.files], snakemake.params.per_file, snakemake.params.seed
    )
    judged, usage = judge_sample(
        sample, judge, judge_prompts_by_question(snakemake.params.eval), spend_file="calibration.json"
    )
    analysis = snakemake.params.analysis
    table = write_calibration(
        judged,
        Path(snakemake.output.table),
        Path(snakemake.output.figure),
        judge_name(judge),
        Path(snakemake.output.judged),
        n_boot=analysis["bootstrap_resamples"],
        confidence=analysis["confidence"],
        rng_seed=analysis["rng_seed"],
    )
    log.info("calibrated %s on %d answers: %s", judge_name(judge), len(judged), usage)
