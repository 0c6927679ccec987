"""The model card of one adapter, with this study's metrics for its cell (rule model_card); the
metrics go to the cell's tracking run too where tracking is on."""

import shutil
from pathlib import Path

from inoculate.aggregate import load_samples, summary_table
from inoculate.jobs import job
from inoculate.model_card import CARD, cell_metrics, evaluation_section, write_card
from inoculate.tracking import TrackingSettings, log_cell_metrics, run_name

with job(snakemake) as log:
    p, w = snakemake.params, snakemake.wildcards
    adapter = Path(snakemake.input.adapter)
    summary = summary_table(load_samples([snakemake.input.judged]), p.analysis, p.criteria)
    cell = {"model": w.model, "setting": w.setting, "inoculation": w.inoculation, "seed": int(w.seed)}
    write_card(
        adapter, cell, p.prompt, p.placement, p.study, evaluation_section(p.study, summary, p.analysis)
    )
    shutil.copyfile(adapter / CARD, snakemake.output[0])
    tracking = TrackingSettings.from_config(snakemake.config.get("tracking"))
    name = run_name(w.model, w.setting, w.inoculation, w.seed, adapter.parent.name)
    log_cell_metrics(tracking, name, cell_metrics(summary))
    log.info("model card of %s: %d metric rows", adapter, len(summary))
