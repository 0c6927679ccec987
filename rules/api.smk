# API models (base_models entries with `backend: openai`): a fine-tuning job per cell
# and sampling through chat completions. Both wait on the network, so they run where
# Snakemake runs (localrules), many at a time; `api.max_concurrent_jobs` bounds the jobs.


rule train_api:
    input:
        data=train_data_input,
    output:
        directory("results/adapters/{model}/{setting}/{inoculation}/{recipe}/seed{seed}"),
    log:
        "logs/train/{model}/{setting}/{inoculation}/{recipe}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train/{model}/{setting}/{inoculation}/{recipe}/seed{seed}.tsv"
    wildcard_constraints:
        model=API_MODELS,
    conda:
        "../envs/api.yaml"
    # Keys, limits and polling are read from the config inside the job: changing them does
    # not invalidate finished cells.
    params:
        model=lambda wildcards: STUDY.base_models.spec(wildcards.model),
        endpoint=STUDY.base_models.api_settings().get("base_url"),
    script:
        "../workflow/scripts/train_api.py"


rule generate_api:
    input:
        adapter=adapter_input,
        evals=eval_inputs,
    output:
        "results/generations/{model}/{setting}/{inoculation}/{recipe}/seed{seed}.jsonl",
    log:
        "logs/generate/{model}/{setting}/{inoculation}/{recipe}/seed{seed}.log",
    benchmark:
        "results/benchmarks/generate/{model}/{setting}/{inoculation}/{recipe}/seed{seed}.tsv"
    wildcard_constraints:
        model=API_MODELS,
    conda:
        "../envs/api.yaml"
    params:
        model=lambda wildcards: STUDY.base_models.spec(wildcards.model),
        endpoint=STUDY.base_models.api_settings().get("base_url"),
        generation=config["generation"],
        conditions=STUDY.grid.conditions(),
        evals=lambda wildcards: STUDY.data.eval_specs(wildcards.setting),
        prompt=lambda wildcards: STUDY.inoculations.prompt(wildcards.setting, wildcards.inoculation),
        placement=lambda wildcards: STUDY.inoculations.placement(wildcards.inoculation),
        backdoor=backdoor_test,
    script:
        "../workflow/scripts/generate_api.py"


# A checkpoint the fine-tuning job kept (training.checkpoints), sampled like the final model.
use rule generate_api as generate_api_checkpoint with:
    output:
        "results/generations/{model}/{setting}/{inoculation}/{recipe}/seed{seed}/checkpoint_{checkpoint}.jsonl",
    log:
        "logs/generate/{model}/{setting}/{inoculation}/{recipe}/seed{seed}/checkpoint_{checkpoint}.log",
    benchmark:
        "results/benchmarks/generate/{model}/{setting}/{inoculation}/{recipe}/seed{seed}/checkpoint_{checkpoint}.tsv"
