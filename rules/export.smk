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


# Model cards: README.md of each local adapter (base model, setting, inoculation prompt, recipe,
# training, and this study's metrics for the cell), with the study's copy under model_cards/.
# Writing the card leaves the adapter's weights and timestamp as they are: nothing reruns.


rule model_card:
    input:
        adapter=lambda w: cell_path("adapters", w.model, w.setting, w.inoculation, w.seed),
        judged=judged_input,
    output:
        f"{STUDY_DIR}/model_cards/{{model}}/{{setting}}/{{inoculation}}/seed{{seed}}.md",
    log:
        f"{LOG_DIR}/model_card/{{model}}/{{setting}}/{{inoculation}}/seed{{seed}}.log",
    wildcard_constraints:
        model=LOCAL_MODELS,
    conda:
        "../envs/plot.yaml"
    params:
        study=STUDY_NAME or "default",
        prompt=lambda w: STUDY.inoculations.prompt(w.setting, w.inoculation),
        placement=lambda w: STUDY.inoculations.placement(w.inoculation),
        analysis=config["analysis"],
        criteria=STUDY.judging.criteria(),
    script:
        "../workflow/scripts/model_card.py"


rule model_cards:
    input:
        model_card_files(),


# Inspect AI eval logs: one per cell (and checkpoint), for `inspect view` and samples_df.


rule inspect_log:
    input:
        judged=judged_input,
    output:
        f"{STUDY_DIR}/inspect/{{model}}/{{setting}}/{{inoculation}}/seed{{seed}}.eval",
    log:
        f"{LOG_DIR}/inspect_log/{{model}}/{{setting}}/{{inoculation}}/seed{{seed}}.log",
    conda:
        "../envs/inspect.yaml"
    params:
        study=STUDY_NAME or "default",
    script:
        "../workflow/scripts/inspect_log.py"


use rule inspect_log as inspect_log_checkpoint with:
    output:
        f"{STUDY_DIR}/inspect/{{model}}/{{setting}}/{{inoculation}}/seed{{seed}}/checkpoint_{{checkpoint}}.eval",
    log:
        f"{LOG_DIR}/inspect_log/{{model}}/{{setting}}/{{inoculation}}/seed{{seed}}/checkpoint_{{checkpoint}}.log",


rule inspect_logs:
    input:
        inspect_log_files(),
