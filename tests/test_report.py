"""The report's front page states the study's criterion as the analysis applies it."""

from __future__ import annotations

from types import SimpleNamespace

import jinja2
import pytest
from conftest import REPO

from inoculate.schema import schema_defaults
from inoculate.stats import Criterion


@pytest.mark.parametrize(
    "criterion",
    [
        "model_organisms",
        "tan",
        {"name": "tan", "aligned_max": 40},
        {"name": "model_organisms", "coherent_min": 60},
    ],
)
def test_front_page_states_the_criterion_in_use(criterion):
    analysis = {**schema_defaults("analysis"), "criterion": criterion}
    config = {
        "models": ["toy"],
        "settings": ["s"],
        "inoculations": ["none"],
        "seeds": [0],
        "analysis": analysis,
    }
    page = jinja2.Template((REPO / "report/workflow.rst").read_text()).render(
        snakemake=SimpleNamespace(config=config)
    )
    rule = Criterion.from_analysis(analysis)
    assert f"**{rule.name}**" in page
    numbers = rule.describe().replace(".0 ", " ").replace(".0,", ",")
    assert numbers.split(",")[0] in page.replace(".0 ", " ").replace(".0,", ","), page
