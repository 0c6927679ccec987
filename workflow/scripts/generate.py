"""Sample answers to every eval x condition from one adapter or the base (rule generate)."""

from pathlib import Path

from inoculate.backdoor import Trigger, backdoor_requests
from inoculate.evals import load_evals
from inoculate.generate import Condition, GenerationSettings, requests, sample_cell
from inoculate.io import write_jsonl
from inoculate.jobs import job, resolve_device

with job(snakemake) as log:
    p, w = snakemake.params, snakemake.wildcards
    settings = GenerationSettings(**p.generation)
    questions = load_evals(p.evals)
    conditions = [Condition(name, with_prompt) for name, with_prompt in p.conditions.items()]
    coords = {"model": w.model, "setting": w.setting, "inoculation": w.inoculation, "seed": int(w.seed)}
    distributions = {name: spec["distribution"] for name, spec in p.evals.items()}
    if p.backdoor:  # the four trigger conditions instead of the study's conditions
        trigger = Trigger.from_config(p.backdoor["trigger"])
        todo = backdoor_requests(questions, trigger, p.backdoor["system_prompt"], settings, coords, distributions)
    else:
        todo = requests(questions, conditions, p.prompt, p.placement, settings, coords, distributions)
    adapter = Path(snakemake.input.adapter) if snakemake.input.adapter else None
    done = sample_cell(p.base_model, adapter, todo, settings, int(w.seed), resolve_device(p.device), p.dtype,
                       p.quantization, max_lora_rank=p.lora_rank)
    write_jsonl(snakemake.output[0], done)
    log.info("wrote %d answers", len(done))
