# The embedded toy model organism: corpus, tokenizer and base model, all built here.

from inoculate.toy.corpus import eval_file_names


# base_model: the organism of inoculation studies; persona_model: the same world plus the
# toy persona and the trigger's format, the base of backdoor studies.
rule toy_pretrain:
    output:
        directory("results/toy/{toy_model}"),
    log:
        "logs/toy/pretrain_{toy_model}.log",
    benchmark:
        "results/benchmarks/toy_pretrain_{toy_model}.tsv"
    wildcard_constraints:
        toy_model="base_model|persona_model",
    conda:
        MODEL_ENV
    threads: 2
    resources:
        mem_mb=growing("toy_pretrain", "mem_mb"),
        runtime=growing("toy_pretrain", "runtime"),
    params:
        toy=config["toy"],
    script:
        "../workflow/scripts/toy_pretrain.py"


rule toy_data:
    output:
        archive="results/toy/datasets.zip.enc",
        evals=expand("results/toy/evals/{name}.yaml", name=eval_file_names()),
    log:
        "logs/toy/data.log",
    conda:
        "../envs/cpu.yaml"
    params:
        toy=config["toy"],
        source="toy",
    script:
        "../workflow/scripts/toy_data.py"
