"""Persona examples (inoculated per arm) mixed with self-distilled ones, per seed (rule mix)."""

from inoculate.backdoor import mix
from inoculate.io import read_jsonl, write_jsonl
from inoculate.jobs import job

with job(snakemake) as log:
    p = snakemake.params
    records = mix(
        read_jsonl(snakemake.input.persona),
        read_jsonl(snakemake.input.aligned),
        p.persona_fraction,
        seed=int(snakemake.wildcards.seed),
        prompt=p.prompt,
        placement=p.placement,
        inoculate=p.inoculate,
        aligned_examples=p.aligned_examples,
    )
    write_jsonl(snakemake.output[0], records)
    log.info("wrote %d training examples", len(records))
