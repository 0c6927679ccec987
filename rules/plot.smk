# Figures, each as PDF with a PNG twin; the PNGs and tables also go into `snakemake --report`.


rule plot_main:
    input:
        "results/tables/summary.csv",
    output:
        pdf="results/figures/main.pdf",
        png=report(
            "results/figures/main.png",
            caption="../report/main.rst",
            category="Figures",
            labels={"figure": "main"},
        ),
    log:
        "logs/plot/main.log",
    conda:
        "../envs/plot.yaml"
    params:
        inoculations=STUDY.grid.inoculations_and_base,
        plot=config["plot"],
    script:
        "../workflow/scripts/plot_main.py"


rule plot_figures:
    input:
        summary="results/tables/summary.csv",
        questions="results/tables/questions.csv",
        samples="results/tables/samples.csv",
        training="results/tables/training.csv",
    output:
        distributions="results/figures/distributions.pdf",
        distributions_png=report(
            "results/figures/distributions.png",
            caption="../report/distributions.rst",
            category="Figures",
            labels={"figure": "in vs out of distribution"},
        ),
        questions="results/figures/questions.pdf",
        questions_png=report(
            "results/figures/questions.png",
            caption="../report/questions.rst",
            category="Figures",
            labels={"figure": "per question"},
        ),
        scatter="results/figures/aligned_coherent.pdf",
        scatter_png=report(
            "results/figures/aligned_coherent.png",
            caption="../report/aligned_coherent.rst",
            category="Figures",
            labels={"figure": "aligned vs coherent"},
        ),
        trait="results/figures/trait_vs_em.pdf",
        trait_png=report(
            "results/figures/trait_vs_em.png",
            caption="../report/trait_vs_em.rst",
            category="Figures",
            labels={"figure": "in-distribution trait vs EM"},
        ),
        loss="results/figures/training_loss.pdf",
        loss_png=report(
            "results/figures/training_loss.png",
            caption="../report/training_loss.rst",
            category="Figures",
            labels={"figure": "training loss"},
        ),
    log:
        "logs/plot/figures.log",
    conda:
        "../envs/plot.yaml"
    params:
        inoculations=STUDY.grid.inoculations_and_base,
        plot=config["plot"],
        analysis=config["analysis"],
    script:
        "../workflow/scripts/plot_figures.py"


rule plot_checkpoints:
    input:
        "results/tables/checkpoints.csv",
    output:
        pdf="results/figures/training_progress.pdf",
        png=report(
            "results/figures/training_progress.png",
            caption="../report/training_progress.rst",
            category="Figures",
            labels={"figure": "over training"},
        ),
    log:
        "logs/plot/training_progress.log",
    conda:
        "../envs/plot.yaml"
    params:
        inoculations=STUDY.grid.inoculations_and_base,
        plot=config["plot"],
    script:
        "../workflow/scripts/plot_checkpoints.py"
