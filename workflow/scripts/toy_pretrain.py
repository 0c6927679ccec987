"""Pretrain the toy base model (rule toy_pretrain)."""

from pathlib import Path

from inoculate.jobs import job
from inoculate.toy.model import pretrain

with job(snakemake) as log:
    toy = snakemake.params.toy
    meta = pretrain(
        Path(snakemake.output[0]),
        n_conversations=toy["conversations"],
        epochs=toy["epochs"],
        seed=toy["seed"],
        persona=snakemake.wildcards.toy_model == "persona_model",
    )
    log.info("pretrained toy base model: %s", meta)
