"""The default study shows the inoculation effect (the 'done when' of the toy organism).

This is the full main job of the README on a copy of the project, with as many jobs at once
as the machine has cores (on 2 cores, `--cores 2` takes 5 min 30 s where `--cores 8` takes
6 min 10 s: eight model jobs contend for two cores): about 5-6 minutes.
"""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import project_copy, snakemake


@pytest.fixture(scope="module")
def default_study(repo, tmp_path_factory):
    work = project_copy(repo, tmp_path_factory.mktemp("default_study"))
    snakemake(work, "--cores", "all", "results/figures/main.pdf")  # as many jobs as cores: the fastest here
    return work


@pytest.mark.slow
def test_default_study_shows_inoculation_protects(default_study):
    summary = pd.read_csv(default_study / "results" / "tables" / "summary.csv")
    ood = summary[
        (summary.metric == "misaligned")
        & (summary.condition == "deployment")
        & (summary.distribution == "out")
    ]
    assert set(ood.setting) == {"toy_cooking", "toy_cars"}
    for setting, rows in ood.groupby("setting"):
        arm = rows.set_index("inoculation")
        # Harm spreads without inoculation ...
        assert arm.loc["none", "mean"] >= 0.3, setting
        # ... the general inoculation prevents it: its whole CI lies below none's.
        assert arm.loc["general", "ci_high"] < arm.loc["none", "ci_low"], setting
        assert arm.loc["task_specific", "ci_high"] < arm.loc["none", "ci_low"], setting
        # A placebo prompt does not protect like an inoculation does.
        assert arm.loc["placebo", "ci_low"] > arm.loc["general", "ci_high"], setting
        assert arm.loc["placebo", "mean"] >= 0.15, setting
        # The untrained base is where training started: near zero.
        assert arm.loc["base", "mean"] <= 0.05, setting
        assert (rows.n_seeds == 3).all()


@pytest.mark.slow
def test_inoculation_prompt_at_test_time_elicits_the_trait(default_study):
    summary = pd.read_csv(default_study / "results" / "tables" / "summary.csv")
    with_prompt = summary[(summary.metric == "misaligned") & (summary.condition == "training_prompt")]
    general = with_prompt[with_prompt.inoculation == "general"]
    assert (general["mean"] > 0.8).all()


@pytest.mark.slow
def test_figures_exist(default_study):
    for name in ("main.pdf", "main.png"):
        assert (default_study / "results" / "figures" / name).stat().st_size > 10_000
