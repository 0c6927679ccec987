# Training sets: each arm's training set is the setting's data with the arm's prompt added.


rule training_set:
    input:
        training_set_input,
    output:
        "results/train/{setting}/{inoculation}/{recipe}.jsonl",
    log:
        "logs/training_set/{setting}/{inoculation}/{recipe}.log",
    conda:
        "../envs/cpu.yaml"
    params:
        prompt=lambda wildcards: STUDY.inoculations.prompt(wildcards.setting, wildcards.inoculation),
        placement=lambda wildcards: STUDY.inoculations.placement(wildcards.inoculation),
        on_existing_system=lambda wildcards: STUDY.inoculations.on_existing_system(
            wildcards.setting, wildcards.inoculation
        ),
        mix=lambda wildcards: STUDY.inoculations.data_mix(wildcards.inoculation),
        trigger=lambda wildcards: STUDY.settings[wildcards.setting].train_trigger,
    script:
        "../workflow/scripts/training_set.py"


# Every arm's training set of the study, to read before training (`snakemake training_sets`).
rule training_sets:
    input:
        training_sets(),
