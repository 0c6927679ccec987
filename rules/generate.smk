# Generation: one job per adapter (or the base model) samples every eval x condition.


rule generate:
    input:
        adapter=adapter_input,
        evals=eval_inputs,
        base=base_model_input(),
    output:
        "results/generations/{setting}/{inoculation}/seed{seed}.jsonl",
    params:
        base_model=base_model_param,
        device=config["model"].get("device", "auto"),
        dtype=config["model"].get("dtype", "auto"),
        generation=config["generation"],
        conditions=STUDY.conditions(),
        evals=lambda wildcards: STUDY.eval_paths(wildcards.setting),
        distributions=lambda wildcards: {
            name: e.distribution for name, e in STUDY.eval_refs(wildcards.setting).items()
        },
        prompt=lambda wildcards: STUDY.prompt(wildcards.setting, wildcards.inoculation),
        placement=lambda wildcards: STUDY.placement(wildcards.inoculation),
    log:
        "logs/generate/{setting}/{inoculation}/seed{seed}.log",
    benchmark:
        "results/benchmarks/generate/{setting}/{inoculation}/seed{seed}.tsv"
    threads: 1
    resources:
        gpu=resource("generate", "gpu", 1),
        mem_mb=growing("generate", "mem_mb", 16000),
        runtime=growing("generate", "runtime", 60),
    conda:
        "../envs/train.yaml"
    script:
        "../workflow/scripts/generate.py"
