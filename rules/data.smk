# Data sources: encrypted archives are decrypted once; each setting's datasets are
# then checked line by line and copied under results/data/.


rule data_decrypt:
    input:
        lambda wildcards: STUDY.source_path(wildcards.source),
    output:
        directory("results/sources/{source}"),
    log:
        "logs/data/decrypt_{source}.log",
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow/scripts/data_decrypt.py"


rule data_select:
    input:
        source_dir=dataset_source_dir,
    output:
        "results/data/{setting}/{split}.jsonl",
    params:
        path=dataset_file,
    log:
        "logs/data/select_{setting}_{split}.log",
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow/scripts/data_select.py"
