# Figures: the main figure (x = setting, y = P(misaligned)) as PDF with a PNG twin.


rule plot_main:
    input:
        "results/tables/summary.csv",
    output:
        pdf="results/figures/main.pdf",
        png="results/figures/main.png",
    params:
        rows=STUDY.rows,
        plot=config["plot"],
    log:
        "logs/plot/main.log",
    conda:
        "../envs/plot.yaml"
    script:
        "../workflow/scripts/plot_main.py"
