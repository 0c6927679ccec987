# Data sources: encrypted archives are decrypted once; each setting's datasets are
# then checked line by line and copied under results/data/.


rule data_decrypt:
    input:
        lambda wildcards: STUDY.data.source_path(wildcards.source),
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
        dataset_input,
    output:
        "results/data/{setting}/{split}.jsonl",
    log:
        "logs/data/select_{setting}_{split}.log",
    conda:
        "../envs/cpu.yaml"
    params:
        path=dataset_file,
    script:
        "../workflow/scripts/data_select.py"


rule data_download:
    output:
        "results/downloads/{source}/{filename}",
    log:
        "logs/data/download_{source}_{filename}.log",
    retries: 2
    conda:
        "../envs/cpu.yaml"
    params:
        url=lambda wildcards: config["sources"][wildcards.source]["url"],
        sha256=lambda wildcards: config["sources"][wildcards.source]["sha256"],
    script:
        "../workflow/scripts/data_download.py"
