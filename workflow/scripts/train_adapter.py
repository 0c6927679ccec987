"""Train one LoRA adapter (rule train_adapter)."""

if snakemake.params.training.get("backend") == "unsloth":
    # Unsloth patches transformers as it is imported: first, before anything imports transformers.
    import unsloth  # noqa: F401

from pathlib import Path

from inoculate.jobs import job
from inoculate.model_client import claim_device
from inoculate.train import TrainSettings, train_lora

with job(snakemake) as log:
    p = snakemake.params
    meta = train_lora(
        p.base_model,
        Path(snakemake.input.data),
        Path(snakemake.output[0]),
        TrainSettings.from_dict(p.training),
        seed=int(snakemake.wildcards.seed),
        device=claim_device(p.device),
        dtype=p.dtype,
        quantization=p.quantization,
    )
    log.info("trained: %s", meta)
