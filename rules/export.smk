# Exports: model_generations.csv (id, question, response) and training_details.md per cell, the
# course-homework deliverables, for other tools.


rule export_generations:
    input:
        generations=export_input,
        adapter=export_adapter,
    output:
        csv=f"{STUDY_DIR}/exports/{{model}}/{{setting}}/{{inoculation}}/seed{{seed}}/model_generations.csv",
        details=f"{STUDY_DIR}/exports/{{model}}/{{setting}}/{{inoculation}}/seed{{seed}}/training_details.md",
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
