# Generation: one job per adapter (or the base model) samples every eval x condition.


rule generate:
    input:
        adapter=adapter_input,
        evals=eval_inputs,
        base=base_model_input,
    output:
        "results/generations/{model}/{setting}/{inoculation}/{recipe}/seed{seed}.jsonl",
    log:
        "logs/generate/{model}/{setting}/{inoculation}/{recipe}/seed{seed}.log",
    benchmark:
        "results/benchmarks/generate/{model}/{setting}/{inoculation}/{recipe}/seed{seed}.tsv"
    wildcard_constraints:
        model=LOCAL_MODELS,
    conda:
        MODEL_ENV
    threads: 1
    resources:
        gpu=resource("generate", "gpu"),
        mem_mb=growing("generate", "mem_mb"),
        runtime=growing("generate", "runtime"),
    params:
        base_model=base_model_param,
        device=model_option("device"),
        dtype=model_option("dtype"),
        quantization=model_option("quantization"),
        generation=config["generation"],
        lora_rank=lambda wildcards: STUDY.base_models.training(wildcards.model)["lora"]["r"],
        conditions=STUDY.grid.conditions(),
        evals=lambda wildcards: STUDY.data.eval_specs(wildcards.setting),
        prompt=lambda wildcards: STUDY.inoculations.prompt(wildcards.setting, wildcards.inoculation),
        placement=lambda wildcards: STUDY.inoculations.placement(wildcards.inoculation),
        backdoor=backdoor_test,
    script:
        "../workflow/scripts/generate.py"


# The same for each checkpoint of an adapter (training.checkpoints): records carry the
# checkpoint's label, step and share of training.
use rule generate as generate_checkpoint with:
    input:
        adapter=adapter_input,
        evals=eval_inputs,
        base=base_model_input,
    output:
        "results/generations/{model}/{setting}/{inoculation}/{recipe}/seed{seed}/checkpoint_{checkpoint}.jsonl",
    log:
        "logs/generate/{model}/{setting}/{inoculation}/{recipe}/seed{seed}/checkpoint_{checkpoint}.log",
    benchmark:
        "results/benchmarks/generate/{model}/{setting}/{inoculation}/{recipe}/seed{seed}/checkpoint_{checkpoint}.tsv"
