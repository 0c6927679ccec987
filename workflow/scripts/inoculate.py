"""Build an arm's training set and add its inoculation prompt to every conversation (rule inoculate)."""

from pathlib import Path

from inoculate.inoculation import build_training_set
from inoculate.jobs import job

with job(snakemake) as log:
    p = snakemake.params
    n = build_training_set(
        [Path(f) for f in snakemake.input],
        Path(snakemake.output[0]),
        p.prompt,
        p.placement,
        p.on_existing_system,
        mix=p.mix,
        trigger=p.trigger,
        name=snakemake.wildcards.inoculation,
    )
    log.info(
        "%d conversations, prompt %r (%s), mix %s, trigger %s", n, p.prompt, p.placement, p.mix, p.trigger
    )
