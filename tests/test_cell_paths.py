"""Cells named by their recipe: studies share what they agree on and never write over each other."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO, SHARED_DATA, load_experiment, project_copy, snakemake

from inoculate.cell_paths import CellPaths, digest, study_folder
from inoculate.checks import load_study
from inoculate.coords import cell_coordinates
from inoculate.doctor import read_config
from inoculate.layering import study_name

DEFAULT = REPO / "config/config.yaml"


def paths(*overrides: str, files: tuple = ()) -> CellPaths:
    config, source = read_config([DEFAULT, *files], [f"settings_dir={REPO / 'config/settings'}", *overrides])
    return CellPaths(load_study(config, source))


def test_digest_ignores_key_order_and_sees_every_value():
    assert digest({"a": 1, "b": {"c": [1, 2]}}) == digest({"b": {"c": [1, 2]}, "a": 1})
    assert digest({"a": 1}) != digest({"a": 1.5}) and len(digest({})) == 10


def test_each_stage_changes_with_what_makes_it_and_nothing_else():
    cell = ("toy", "toy_cooking", "general")
    default = paths()
    faster = paths("training={learning_rate: 0.003}")
    # Another learning rate: a new adapter, so new answers and judgments; the untrained
    # model's cells and the training set are shared.
    assert faster.adapter_digest(*cell) != default.adapter_digest(*cell)
    assert faster.generation_digest(*cell) != default.generation_digest(*cell)
    assert faster.judgment_digest(*cell) != default.judgment_digest(*cell)
    assert faster.training_set_digest("toy_cooking", "general") == default.training_set_digest(
        "toy_cooking", "general"
    )
    assert faster.judgment_digest("toy", "toy_cooking", "base") == default.judgment_digest(
        "toy", "toy_cooking", "base"
    )
    # Another sampling: same adapter, new answers.
    longer = paths("generation={max_new_tokens: 33}")
    assert longer.adapter_digest(*cell) == default.adapter_digest(*cell)
    assert longer.generation_digest(*cell) != default.generation_digest(*cell)
    # Call settings and folders of this machine are no part of a recipe.
    calls = paths("judge={concurrency: 3, spend_dir: elsewhere}", "resources={train_adapter: {mem_mb: 1}}")
    assert calls.judgment_digest(*cell) == default.judgment_digest(*cell)
    # The same cell in every seed shares the recipe folder; the seed names the file.
    assert (
        default.cell("adapters", *cell, 0).rsplit("/", 1)[0]
        == default.cell("adapters", *cell, 2).rsplit("/", 1)[0]
    )
    assert cell_coordinates(default.cell("judgments", *cell, 2, ".jsonl")) == (*cell, 2)


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data")
def test_a_study_moved_to_another_data_folder_finds_its_cells(tmp_path):
    (tmp_path / "data").symlink_to(SHARED_DATA)
    here = CellPaths(load_experiment("em_main.yaml"))
    moved = CellPaths(load_experiment("em_main.yaml", f"external_data_dir={tmp_path / 'data'}"))
    for model, setting, arm, seed in here.study.grid.cells()[:12]:
        assert moved.cell("judgments", model, setting, arm, seed) == here.cell(
            "judgments", model, setting, arm, seed
        )


def test_study_names_and_folders(tmp_path):
    personal = tmp_path / "mine.yaml"
    personal.write_text(yaml.safe_dump({"external_data_dir": "/data"}))
    study = REPO / "config/experiments/toy_all_arms.yaml"
    assert study_name({}, [DEFAULT], DEFAULT) is None  # the default study keeps results/
    assert (
        study_name({}, [DEFAULT, study, personal], DEFAULT) == "toy_all_arms"
    )  # a personal file names nothing
    assert study_name({"study": "mine"}, [DEFAULT, study], DEFAULT) == "mine"
    assert study_folder(None) == "results" and study_folder("toy_all_arms") == "results/toy_all_arms"
    with pytest.raises(ValueError, match="'adapters' is a folder of results/"):
        study_folder("adapters")


def test_paths_from_another_folder_and_a_path_of_another_recipe(repo, tmp_path):
    """`snakemake -d DIR` finds the workflow's own files; a cell's path under a digest that is not
    the study's recipe for it is refused, naming both."""
    work = project_copy(repo, tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    dry = snakemake(
        tmp_path,
        "-n",
        "-s",
        str(work / "Snakefile"),
        "-d",
        str(elsewhere),
        "--configfile",
        str(work / "config/experiments/toy_all_arms.yaml"),
    )
    assert "results/toy_all_arms/figures/main.pdf" in dry.stdout
    wrong = snakemake(work, "-n", "results/adapters/toy/toy_cooking/none/0000000000/seed0", check=False)
    want = paths().adapter_digest("toy", "toy_cooking", "none")
    assert (
        wrong.returncode != 0
        and f"recipe 0000000000 is not this study's ({want})" in wrong.stdout + wrong.stderr
    )
