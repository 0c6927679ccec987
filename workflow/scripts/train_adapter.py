"""Train one LoRA adapter (rule train_adapter). On the CPU a warm training process of the machine
trains it (inoculate.model_client), its steps, progress and log relayed here; where none can,
or on a GPU, this process does."""

if snakemake.params.training.get("backend") == "unsloth":
    # Unsloth patches transformers as it is imported: first, before anything imports transformers.
    import unsloth  # noqa: F401

import sys
from pathlib import Path

from inoculate.jobs import current_job, job
from inoculate.model_client import (
    ModelServerUnavailable,
    claim_device,
    train_through_server,
    training_served,
)
from inoculate.tracking import TrackingSettings, run_name, training_run

with job(snakemake) as log:
    p, w = snakemake.params, snakemake.wildcards
    cell = {"model": w.model, "setting": w.setting, "inoculation": w.inoculation, "seed": int(w.seed)}
    recipe = {**cell, "recipe": w.recipe, "base_model": p.base_model, "quantization": p.quantization}
    recipe["training"] = p.training
    tracking = TrackingSettings.from_config(snakemake.config.get("tracking"))
    name = run_name(w.model, w.setting, w.inoculation, w.seed, w.recipe)
    with training_run(tracking, name, recipe) as on_step:
        meta = None
        if training_served(p.device, p.training.get("backend", "transformers"), p.quantization):

            def relay(message: dict) -> None:
                if "row" in message and on_step is not None:
                    on_step(message["row"])
                if "line" in message:  # a progress line, for the console
                    print(message["line"], file=sys.__stderr__, flush=True)
                if "log" in message:  # a log record, for this job's log
                    print(message["log"], file=sys.stderr, flush=True)

            args = {
                "base_model": p.base_model,
                "data": str(snakemake.input.data),  # the server works in this job's folder
                "out_dir": str(snakemake.output[0]),
                "training": p.training,
                "seed": int(w.seed),
                "dtype": p.dtype,
                "quantization": p.quantization,
                "label": current_job(),
            }
            try:
                reply = train_through_server(snakemake.threads, args, relay)
                meta = reply["meta"]
                log.info("trained by a warm training process (its request %d)", reply["served"])
            except ModelServerUnavailable as e:
                log.warning("%s; training in this process", e)
        if meta is None:
            from inoculate.train import TrainSettings, train_lora

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
