"""Sample answers to every eval x condition from one adapter, one of its checkpoints, or the base
(rules generate, generate_checkpoint)."""

from pathlib import Path

from inoculate.checkpoints import tag_records
from inoculate.generate import sample_cell
from inoculate.io import write_jsonl
from inoculate.jobs import job, resolve_device
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
