"""Sample answers to every eval x condition from one adapter, one of its checkpoints, or the base
(rules generate, generate_checkpoint). The answers come from the machine's model server for this
base model (inoculate.model_client), which loads it (or builds its vLLM engine) once for every
cell; where none can answer, from this process."""

from dataclasses import asdict
from pathlib import Path

from inoculate.checkpoints import tag_records
from inoculate.io import write_jsonl
from inoculate.jobs import job
from inoculate.model_client import ModelServerUnavailable, enabled, sample_through_server
from inoculate.sampling_plan import GenerationSettings, cell_requests

with job(snakemake) as log:
    p, w = snakemake.params, snakemake.wildcards
    settings = GenerationSettings(**p.generation)
    coords = {"model": w.model, "setting": w.setting, "inoculation": w.inoculation, "seed": int(w.seed)}
    todo = cell_requests(p.evals, p.conditions, p.prompt, p.placement, settings, coords, p.backdoor)
    adapter = Path(snakemake.input.adapter) if snakemake.input.adapter else None
    checkpoint = w.get("checkpoint")
    if checkpoint:
        adapter = adapter / "checkpoints" / checkpoint
    done = None
    if enabled(settings.backend, p.quantization):
        spec = {
            "base_model": p.base_model,
            "backend": settings.backend,
            "device": p.device,
            "dtype": p.dtype,
            "quantization": p.quantization,
            "max_lora_rank": p.lora_rank,
        }
        try:
            reply = sample_through_server(
                {**spec, "threads": snakemake.threads}, adapter, todo, asdict(settings), int(w.seed)
            )
            done = reply["records"]
            log.info(
                "sampled by the model server (base loads %d, requests %d)", reply["loads"], reply["served"]
            )
        except ModelServerUnavailable as e:
            log.warning("%s; sampling in this process", e)
    if done is None:
        from inoculate.generate import sample_cell
        from inoculate.jobs import resolve_device

        done = sample_cell(
            p.base_model,
            adapter,
            todo,
            settings,
            int(w.seed),
            resolve_device(p.device),
            p.dtype,
            p.quantization,
            max_lora_rank=p.lora_rank,
        )
    if checkpoint:
        done = tag_records(done, adapter)
    write_jsonl(snakemake.output[0], done)
    log.info("wrote %d answers", len(done))
