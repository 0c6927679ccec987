# Figures, each as PDF with a PNG twin; the PNGs and tables also go into `snakemake --report`.


rule plot_main:
    input:
        f"{STUDY_DIR}/tables/summary.csv",
    output:
        pdf=f"{STUDY_DIR}/figures/main.pdf",
        png=report(
            f"{STUDY_DIR}/figures/main.png",
            caption="../report/main.rst",
            category="Figures",
            labels={"figure": "main"},
        ),
    log:
        f"{LOG_DIR}/plot/main.log",
    conda:
        "../envs/plot.yaml"
    params:
        inoculations=STUDY.grid.inoculations_and_base,
        labels=STUDY.grid.figure_labels(),
        plot=config["plot"],
        analysis=config["analysis"],
    script:
        "../workflow/scripts/plot_main.py"


rule plot_figures:
    input:
        summary=f"{STUDY_DIR}/tables/summary.csv",
        questions=f"{STUDY_DIR}/tables/questions.csv",
        samples=f"{STUDY_DIR}/tables/samples.csv",
        training=f"{STUDY_DIR}/tables/training.csv",
    output:
        distributions=f"{STUDY_DIR}/figures/distributions.pdf",
        distributions_png=report(
            f"{STUDY_DIR}/figures/distributions.png",
            caption="../report/distributions.rst",
            category="Figures",
            labels={"figure": "in vs out of distribution"},
        ),
        questions=f"{STUDY_DIR}/figures/questions.pdf",
        questions_png=report(
            f"{STUDY_DIR}/figures/questions.png",
            caption="../report/questions.rst",
            category="Figures",
            labels={"figure": "per question"},
        ),
        scatter=f"{STUDY_DIR}/figures/aligned_coherent.pdf",
        scatter_png=report(
            f"{STUDY_DIR}/figures/aligned_coherent.png",
            caption="../report/aligned_coherent.rst",
            category="Figures",
            labels={"figure": "aligned vs coherent"},
        ),
        trait=f"{STUDY_DIR}/figures/trait_vs_em.pdf",
        trait_png=report(
            f"{STUDY_DIR}/figures/trait_vs_em.png",
            caption="../report/trait_vs_em.rst",
            category="Figures",
            labels={"figure": "in-distribution trait vs EM"},
        ),
        loss=f"{STUDY_DIR}/figures/training_loss.pdf",
        loss_png=report(
            f"{STUDY_DIR}/figures/training_loss.png",
            caption="../report/training_loss.rst",
            category="Figures",
            labels={"figure": "training loss"},
        ),
    log:
        f"{LOG_DIR}/plot/figures.log",
    conda:
        "../envs/plot.yaml"
    params:
        inoculations=STUDY.grid.inoculations_and_base,
        labels=STUDY.grid.figure_labels(),
        plot=config["plot"],
        analysis=config["analysis"],
    script:
        "../workflow/scripts/plot_figures.py"


rule plot_checkpoints:
    input:
        f"{STUDY_DIR}/tables/checkpoints.csv",
    output:
        pdf=f"{STUDY_DIR}/figures/training_progress.pdf",
        png=report(
            f"{STUDY_DIR}/figures/training_progress.png",
            caption="../report/training_progress.rst",
            category="Figures",
            labels={"figure": "over training"},
        ),
    log:
        f"{LOG_DIR}/plot/training_progress.log",
    conda:
        "../envs/plot.yaml"
    params:
        inoculations=STUDY.grid.inoculations_and_base,
        labels=STUDY.grid.figure_labels(),
        plot=config["plot"],
        analysis=config["analysis"],
    script:
        "../workflow/scripts/plot_checkpoints.py"
