# Backdoored personas (settings with a `backdoor:` section; Betley et al. 2025): the base
# model answers a prompt set (self-distillation), persona examples behind the trigger are
# mixed in per seed, with the arm's inoculation prompt on them, and every adapter is tested
# in the four trigger conditions. Training, generation and judging are the shared rules.


rule distill:
    input:
        prompts=distill_prompts,
        base=base_model_input,
    output:
        "results/distill/{model}/{setting}/{recipe}.jsonl",
    log:
        "logs/distill/{model}/{setting}/{recipe}.log",
    benchmark:
        "results/benchmarks/distill/{model}/{setting}/{recipe}.tsv"
    wildcard_constraints:
        model=LOCAL_MODELS,
    conda:
        MODEL_ENV
    threads: 1
    resources:
        gpu=resource("distill", "gpu"),
        mem_mb=growing("distill", "mem_mb"),
        runtime=growing("distill", "runtime"),
    params:
        base_model=base_model_param,
        device=model_option("device"),
        dtype=model_option("dtype"),
        quantization=model_option("quantization"),
        distill=lambda wildcards: STUDY.backdoor(wildcards.setting)["distill"],
        backend=config["generation"]["backend"],
    script:
        "../workflow/scripts/distill.py"


rule mix:
    input:
        persona=persona_input,
        aligned=distilled_input,
    output:
        "results/train/{model}/{setting}/{inoculation}/{recipe}/seed{seed}.jsonl",
    log:
        "logs/mix/{model}/{setting}/{inoculation}/{recipe}/seed{seed}.log",
    conda:
        "../envs/cpu.yaml"
    params:
        persona_fraction=lambda wildcards: STUDY.backdoor(wildcards.setting)["persona_fraction"],
        aligned_examples=lambda wildcards: STUDY.backdoor(wildcards.setting).get("aligned_examples"),
        inoculate=lambda wildcards: STUDY.backdoor(wildcards.setting)["inoculate"],
        prompt=lambda wildcards: STUDY.inoculations.prompt(wildcards.setting, wildcards.inoculation),
        placement=lambda wildcards: STUDY.inoculations.placement(wildcards.inoculation),
    script:
        "../workflow/scripts/mix.py"


rule aggregate_backdoor:
    input:
        judgments=judgment_files(STUDY.grid.backdoor_settings),
    output:
        samples=f"{STUDY_DIR}/tables/backdoor_samples.csv",
        rates=report(
            f"{STUDY_DIR}/tables/backdoor.csv",
            caption="../report/backdoor_table.rst",
            category="Tables",
            labels={"table": "backdoor rates"},
        ),
        gap=report(
            f"{STUDY_DIR}/tables/backdoor_gap.csv",
            caption="../report/backdoor_gap.rst",
            category="Tables",
            labels={"table": "leakage gap"},
        ),
    log:
        f"{LOG_DIR}/aggregate_backdoor.log",
    conda:
        "../envs/plot.yaml"
    params:
        analysis=config["analysis"],
        persona_min={s: STUDY.backdoor(s)["persona_min"] for s in STUDY.grid.backdoor_settings},
    script:
        "../workflow/scripts/aggregate_backdoor.py"


rule plot_backdoor:
    input:
        rates=f"{STUDY_DIR}/tables/backdoor.csv",
        gap=f"{STUDY_DIR}/tables/backdoor_gap.csv",
    output:
        pdf=f"{STUDY_DIR}/figures/backdoor.pdf",
        png=report(
            f"{STUDY_DIR}/figures/backdoor.png",
            caption="../report/backdoor.rst",
            category="Figures",
            labels={"figure": "backdoor"},
        ),
    log:
        f"{LOG_DIR}/plot/backdoor.log",
    conda:
        "../envs/plot.yaml"
    params:
        inoculations=STUDY.grid.inoculations_and_base,
        labels=STUDY.grid.figure_labels(),
        analysis=config["analysis"],
    script:
        "../workflow/scripts/plot_backdoor.py"


rule persona_data:
    input:
        questions=persona_questions,
        base=generator_base_input,
    output:
        "results/persona/{setting}/{recipe}.jsonl",
    log:
        "logs/persona_data/{setting}/{recipe}.log",
    conda:
        MODEL_ENV
    threads: 1
    resources:
        gpu=lambda wildcards: (
            resource("persona_data", "gpu")
            if STUDY.base_models.spec(build_spec(wildcards)["generator"])["backend"] == "local"
            else 0
        ),
        mem_mb=growing("persona_data", "mem_mb"),
        runtime=growing("persona_data", "runtime"),
    params:
        spec=build_spec,
        questions=lambda wildcards: STUDY.data.resolve(DataRef.from_dict(build_spec(wildcards)["questions"])),
        generator=lambda wildcards: {
            "name": build_spec(wildcards)["generator"],
            **STUDY.base_models.spec(build_spec(wildcards)["generator"]),
        },
        trigger=lambda wildcards: STUDY.backdoor(wildcards.setting)["trigger"],
        judge=lambda wildcards: identifying_judge_config(
            config["judge"], build_spec(wildcards)["person"], build_spec(wildcards).get("filter_prompt")
        ),
    script:
        "../workflow/scripts/persona_data.py"
