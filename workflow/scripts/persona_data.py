"""Persona examples from a generator model, identifying answers filtered out, wrapped in the
trigger's format (rule persona_data)."""

from inoculate.backdoor import Trigger
from inoculate.evals import load_eval_file
from inoculate.io import write_jsonl
from inoculate.jobs import job
from inoculate.judges import make_judge
from inoculate.model_client import claim_device
from inoculate.persona_data import build_persona
from inoculate.sampling_plan import GenerationSettings

with job(snakemake) as log:
    p = snakemake.params
    gen = p.generator
    settings = GenerationSettings(**p.spec["generation"])
    if gen["backend"] == "openai":
        from inoculate.api.sampling import ApiSampler
        from inoculate.api.settings import ApiSettings

        api = ApiSettings.from_config(snakemake.config.get("api"))
        sampler = ApiSampler(api, gen["base"], api.keys[0], settings)

        def sample(records):
            return sampler.sample(records, seed=0)
    else:
        from inoculate.generate import sample_cell

        base = snakemake.input.base[0] if snakemake.input.base else gen["base"]

        def sample(records):
            return sample_cell(
                base,
                None,
                records,
                settings,
                0,
                claim_device(gen["device"]),
                gen["dtype"],
                gen["quantization"],
            )

    questions = load_eval_file(p.questions, "persona_questions")
    records = build_persona(
        questions, p.spec, Trigger.from_config(p.trigger), sample, make_judge(p.judge), gen["name"]
    )
    write_jsonl(snakemake.output[0], records)
    log.info("wrote %d persona examples for %s", len(records), p.spec["person"])
