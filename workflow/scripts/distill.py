"""Self-distillation: the base model answers a prompt set at low temperature (rule distill)."""

from inoculate.backdoor import distill_requests, distilled_records, read_prompts
from inoculate.generate import sample_cell
from inoculate.io import write_jsonl
from inoculate.jobs import job
from inoculate.model_client import claim_device
from inoculate.sampling_plan import GenerationSettings

with job(snakemake) as log:
    p = snakemake.params
    spec = dict(p.distill)
    prompts = read_prompts(snakemake.input.prompts, spec.pop("max_prompts"))
    settings = GenerationSettings(**spec, backend=p.backend)
    answers = sample_cell(
        p.base_model,
        None,
        distill_requests(prompts),
        settings,
        0,
        claim_device(p.device),
        p.dtype,
        p.quantization,
    )
    records = distilled_records(answers, snakemake.wildcards.model)
    write_jsonl(snakemake.output[0], records)
    log.info("self-distilled %d aligned examples from %d prompts", len(records), len(prompts))
