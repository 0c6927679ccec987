"""Train one LoRA adapter (rule train_adapter)."""

if snakemake.params.training.get("backend") == "unsloth":
    # Unsloth patches transformers as it is imported: first, before anything imports transformers.
    import unsloth  # noqa: F401

from pathlib import Path

from inoculate.jobs import job
from inoculate.model_client import claim_device
from inoculate.tracking import TrackingSettings, run_name, training_run
from inoculate.train import TrainSettings, train_lora

with job(snakemake) as log:
    p, w = snakemake.params, snakemake.wildcards
    cell = {"model": w.model, "setting": w.setting, "inoculation": w.inoculation, "seed": int(w.seed)}
    recipe = {**cell, "recipe": w.recipe, "base_model": p.base_model, "quantization": p.quantization}
    recipe["training"] = p.training
    tracking = TrackingSettings.from_config(snakemake.config.get("tracking"))
    with training_run(
        tracking, run_name(w.model, w.setting, w.inoculation, w.seed, w.recipe), recipe
    ) as on_step:
        meta = train_lora(
            p.base_model,
            Path(snakemake.input.data),
            Path(snakemake.output[0]),
            TrainSettings.from_dict(p.training),
            seed=int(w.seed),
            device=claim_device(p.device),
            dtype=p.dtype,
            quantization=p.quantization,
            on_step=on_step,
        )
    log.info("trained: %s", meta)
