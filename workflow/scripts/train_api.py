"""Fine-tune one cell's model through the API, or find its job (rule train_api)."""

from pathlib import Path

from inoculate.api.finetune import FineTuner, FineTuneSpec
from inoculate.api.settings import ApiSettings
from inoculate.jobs import job

with job(snakemake) as log:
    p, w = snakemake.params, snakemake.wildcards
    spec = FineTuneSpec(
        base_model=p.model["base"],
        seed=int(w.seed),
        hyperparameters=dict(p.model.get("hyperparameters") or {}),
        suffix=p.model.get("suffix"),
        coordinates={"model": w.model, "setting": w.setting, "inoculation": w.inoculation, "seed": w.seed},
    )
    result = FineTuner(ApiSettings.from_config(snakemake.config.get("api"))).run(
        Path(snakemake.input.data), spec, Path(snakemake.output[0])
    )
    log.info("fine-tuned model %s (job %s)", result["fine_tuned_model"], result["job_id"])
