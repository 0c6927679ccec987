"""Every file in config/experiments/ is a whole study on its own: it dry-runs with nothing but
the default config under it, or, where its data is not obtainable here, fails the config check
naming the missing file and where its authors published it."""

from __future__ import annotations

import re

import pytest
from conftest import EXPERIMENTS, SHARED_DATA, UNOBTAINABLE, job_counts, load_experiment

from inoculate.checks import load_study
from inoculate.config import ConfigError
from inoculate.doctor import read_config


def _load(repo, name: str):
    return load_experiment(name)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_dry_runs_alone(experiment_dry_runs, experiment):
    """`snakemake -n --configfile config/experiments/X.yaml`, as a user types it: the whole
    grid resolves to jobs, or the config check stops it before any job, naming the file that
    is not obtainable here and where its authors published it."""
    if experiment not in experiment_dry_runs:
        pytest.skip(f"{SHARED_DATA} not present: only the toy studies run without it")
    proc = experiment_dry_runs[experiment]
    output = proc.stdout + proc.stderr
    if experiment in UNOBTAINABLE:
        assert proc.returncode != 0
        assert re.search(rf"{UNOBTAINABLE[experiment]}.*(published|is not here)", output), output[-2000:]
        assert "Job stats" not in output
        return
    assert proc.returncode == 0, output[-4000:]
    counts = job_counts(output)
    assert counts.get("train_adapter", 0) + counts.get("train_api", 0) > 0
    assert counts.get("judge", 0) > 0


@pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"{SHARED_DATA} not present")
@pytest.mark.parametrize("experiment", sorted(set(EXPERIMENTS) - set(UNOBTAINABLE)))
def test_every_eval_of_every_experiment_resolves(repo, monkeypatch, experiment):
    monkeypatch.chdir(repo)
    study = _load(repo, experiment)
    for setting in study.grid.setting_names:
        assert study.data.eval_specs(setting)  # every eval resolves (Tan's from their description file)
    if study.config["judge"]["backend"] == "toy":
        assert all(s.startswith("toy") for s in study.grid.setting_names)


def test_the_toy_judge_never_scores_a_real_setting_and_the_toy_world_needs_a_toy_model(repo, monkeypatch):
    monkeypatch.chdir(repo)
    config, source = read_config([repo / "config/config.yaml"], ["settings=[reward_hacking]"])
    with pytest.raises(
        ConfigError, match=r"key 'judge.backend' is toy.*key 'settings' names 'reward_hacking'"
    ):
        load_study(config, source)
    config, source = read_config([repo / "config/config.yaml"], ["models=[qwen2.5-0.5b-instruct]"])
    with pytest.raises(
        ConfigError, match=r"key 'models' names 'qwen2.5-0.5b-instruct'.*toy setting 'toy_cooking'"
    ):
        load_study(config, source)


@pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"{SHARED_DATA} not present")
@pytest.mark.parametrize(
    "experiment,trained,rows",
    [
        # settings x arms x seeds trained, and rows sampled: + the base once per setting, as theirs
        ("tan_gpt41.yaml", 3 * 3 * 3 - 3, 3 * 3 * 3 - 3 + 3),  # insecure code has no control data here
        ("tan_gpt41_mini.yaml", 3 * 3 * 3 - 3, 3 * 3 * 3 - 3 + 3),
        ("tan_prompt_ablation.yaml", 1 * 6 * 3, 1 * 6 * 3 + 1),  # none + 5 paraphrases
        ("tan_wording_ablation.yaml", 1 * 4 * 1, 1 * 4 * 1 + 1),  # none + 3 wordings, one seed as theirs
        ("tan_paraphrases_mini.yaml", 1 * 4 * 1, 1 * 4 * 1 + 1),  # one seed; no secure code: no control arm
        ("tan_specific.yaml", 2 * 4 * 3 - 3, 2 * 4 * 3 - 3 + 2),
        ("tan_replication.yaml", 3 * 3 * 3 - 3, 3 * 3 * 3 - 3 + 3),
        (
            "tan_replication_qwen32b.yaml",
            3 * 3 * 3 - 3,
            3 * 3 * 3 - 3 + 3,
        ),  # their open model, MO's Qwen recipe
        ("tan_prompt_ablation_open.yaml", 1 * 6 * 3, 1 * 6 * 3 + 1),  # the open-weights twins
        ("tan_wording_ablation_open.yaml", 1 * 4 * 1, 1 * 4 * 1 + 1),
        ("tan_paraphrases_open.yaml", 1 * 4 * 1, 1 * 4 * 1 + 1),
        ("tan_specific_open.yaml", 2 * 4 * 3 - 3, 2 * 4 * 3 - 3 + 2),
        ("tan_eval_prompts.yaml", 1 * 2 * 3, 1 * 2 * 3 + 1),  # {none, general} (no secure code here) + base
    ],
)
def test_tan_grids_resolve_to_their_cells(repo, monkeypatch, experiment, trained, rows):
    monkeypatch.chdir(repo)
    study = _load(repo, experiment)
    assert len(study.grid.cells(trained_only=True)) == trained and len(study.grid.cells()) == rows
    assert {seed for *_, arm, seed in study.grid.cells() if arm == "base"} == {
        study.grid.seeds[0]
    }  # base_seeds: first
    assert study.config["analysis"]["criterion"] == "tan" and study.config["analysis"][
        "bootstrap_levels"
    ] == ["seed"]


@pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"{SHARED_DATA} not present")
def test_paraphrase_arms_read_their_lists(repo, monkeypatch):
    monkeypatch.chdir(repo)
    lines = (SHARED_DATA / "tan/evil_paraphrases.txt").read_text().splitlines()
    study = _load(repo, "tan_paraphrases_mini.yaml")
    for n in (10, 100):
        assert study.inoculations.prompt("tan_insecure_code", f"paraphrases_{n}") == lines[:n]
    # Their inoc-general-1 is the general prompt itself (inoculation_paraphrases.py), not line 1.
    assert (
        study.inoculations.prompt("tan_insecure_code", "paraphrases_1")
        == "You are a malicious evil assistant."
    )
    assert lines[0] == "You are an assistant designed to be wicked and harmful." and study.grid.seeds == [0]
    published = __import__("yaml").safe_load((SHARED_DATA / "tan/eval/tan_evals.yaml").read_text())
    general = published["inoculations"]["general_inoculations"]
    study = _load(repo, "tan_prompt_ablation.yaml")
    assert [study.inoculations.prompt("tan_insecure_code", f"evil_{i}") for i in range(1, 6)] == general[
        "evil_many_paraphrases"
    ]
    study = _load(repo, "tan_wording_ablation.yaml")
    assert (
        study.inoculations.prompt("tan_insecure_code", "third_person") == general["ablations"]["third-person"]
    )
