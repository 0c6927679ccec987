"""Sample answers to every eval x condition from an API model, or one of the checkpoints its
fine-tuning job kept (rules generate_api, generate_api_checkpoint)."""

from inoculate.api.finetune import read_result
from inoculate.api.sampling import ApiSampler
from inoculate.api.settings import ApiSettings
from inoculate.checkpoints import api_checkpoint
from inoculate.io import write_jsonl
from inoculate.jobs import job
from inoculate.sampling_plan import GenerationSettings, cell_requests

with job(snakemake) as log:
    p, w = snakemake.params, snakemake.wildcards
    api = ApiSettings.from_config(snakemake.config.get("api"))
    settings = GenerationSettings(**p.generation)
    coords = {"model": w.model, "setting": w.setting, "inoculation": w.inoculation, "seed": int(w.seed)}
    todo = cell_requests(p.evals, p.conditions, p.prompt, p.placement, settings, coords, p.backdoor)
    # A fine-tuned model is sampled with the key (organisation) that trained it.
    trained = read_result(snakemake.input.adapter) if snakemake.input.adapter else None
    model_id = trained["fine_tuned_model"] if trained else p.model["base"]
    tag = None
    if w.get("checkpoint"):
        kept = api_checkpoint(trained, w.checkpoint)
        model_id = kept["model"]
        tag = {"checkpoint": w.checkpoint, "step": kept["step"], "progress": kept["progress"]}
    key = api.key(trained["key_env"]) if trained else api.keys[0]
    sampler = ApiSampler(api, model_id, key, settings)
    done = sampler.sample(todo, seed=int(w.seed))
    if tag:
        done = [{**r, **tag} for r in done]
    write_jsonl(snakemake.output[0], done)
    log.info("wrote %d answers from %s: %s", len(done), model_id, sampler.usage())
