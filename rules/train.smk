# Training: one LoRA adapter per (setting, inoculation, seed).


rule train_adapter:
    input:
        data=train_data_input,
        base=base_model_input,
    output:
        directory("results/adapters/{model}/{setting}/{inoculation}/{recipe}/seed{seed}"),
    log:
        "logs/train/{model}/{setting}/{inoculation}/{recipe}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train/{model}/{setting}/{inoculation}/{recipe}/seed{seed}.tsv"
    wildcard_constraints:
        model=LOCAL_MODELS,
    conda:
        MODEL_ENV
    threads: 1
    resources:
        gpu=resource("train_adapter", "gpu"),
        mem_mb=growing("train_adapter", "mem_mb"),
        runtime=growing("train_adapter", "runtime"),
    params:
        base_model=base_model_param,
        device=model_option("device"),
        dtype=model_option("dtype"),
        quantization=model_option("quantization"),
        training=lambda wildcards: STUDY.base_models.training(wildcards.model),
    script:
        "../workflow/scripts/train_adapter.py"
