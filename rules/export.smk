# Exports: model_generations.csv (id, question, response) per adapter, for other tools.


rule export_generations:
    input:
        export_input,
    output:
        f"{STUDY_DIR}/exports/{{model}}/{{setting}}/{{inoculation}}/seed{{seed}}/model_generations.csv",
    log:
        f"{LOG_DIR}/export/{{model}}/{{setting}}/{{inoculation}}/seed{{seed}}.log",
    conda:
        "../envs/cpu.yaml"
    params:
        condition=config["plot"]["condition"],
    script:
        "../workflow/scripts/export_generations.py"


rule exports:
    input:
        export_files(),
