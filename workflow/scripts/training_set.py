"""Build an arm's training set and add its inoculation prompt to every conversation (rule training_set)."""

from pathlib import Path

from inoculate.jobs import job
from inoculate.training_set import build_training_set

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
