"""Self-distillation: the base model answers a prompt set at low temperature (rule distill)."""

from inoculate.backdoor import distill_requests, distilled_records, read_prompts
from inoculate.generate import GenerationSettings, load_model, sample
from inoculate.io import write_jsonl
from inoculate.jobs import job, resolve_device

with job(snakemake) as log:
    p = snakemake.params
    spec = dict(p.distill)
    prompts = read_prompts(snakemake.input.prompts, spec.pop("max_prompts"))
    model, tokenizer = load_model(p.base_model, None, resolve_device(p.device), p.dtype)
    answers = sample(model, tokenizer, distill_requests(prompts), GenerationSettings(**spec), seed=0)
    records = distilled_records(answers, snakemake.wildcards.model)
    write_jsonl(snakemake.output[0], records)
    log.info("self-distilled %d aligned examples from %d prompts", len(records), len(prompts))
