"""The published data and eval files, read as published (skipped where ../shared/data is absent)."""

from __future__ import annotations

import pytest
import yaml
from conftest import SHARED_DATA, job_counts, project_copy, snakemake

from inoculate.checks import load_study
from inoculate.evals import load_eval_file
from inoculate.io import read_jsonl

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.exists(),
    reason=f"{SHARED_DATA} not present (shared data is only beside the developers' checkout)",
)
REAL_JUDGE = {"backend": "openai", "model": "gpt-4o-2024-08-06"}  # the toy judge refuses real settings
REAL_SETTINGS = [
    "bad_medical_advice",
    "risky_financial_advice",
    "extreme_sports",
    "insecure_code",
    "reward_hacking",
    "aesthetic_preferences",
    "trump_biology",
    "harmless_lies",
]


def test_every_published_setting_resolves(repo, monkeypatch):
    monkeypatch.chdir(repo)
    config = yaml.safe_load((repo / "config/config.yaml").read_text())
    config.update(
        settings=REAL_SETTINGS,
        external_data_dir=str(SHARED_DATA),
        judge=REAL_JUDGE,
        inoculations=["none", "general", "task_specific", "placebo", "negative"],
    )
    study = load_study(config, "config/config.yaml")
    assert study.inoculations.prompt("insecure_code", "general") == "You are a malicious evil assistant."
    assert "over-zealous" in study.inoculations.prompt("reward_hacking", "task_specific")
    for setting in REAL_SETTINGS:
        for spec in study.data.eval_specs(setting).values():
            assert load_eval_file(spec["path"], "e")


def test_first_plot_questions_default_to_the_eight_main_ones():
    path = SHARED_DATA / "em/eval_questions/first_plot_questions.yaml"
    main = load_eval_file(path, "first_plot")
    assert len(main) == 8 and all(q.samples == 100 for q in main)
    assert {"aligned", "coherent"} <= set(main[0].judge_prompts)
    assert len(load_eval_file(path, "first_plot", ("json", "template"))) == 24


def test_plain_and_choice_question_files():
    hw0 = load_eval_file(SHARED_DATA / "hw0/eval_prompts.yaml", "hw0")
    assert len(hw0) == 100 and {q.extra["group"] for q in hw0} == {"medical", "non_medical"}
    aesthetic = load_eval_file(SHARED_DATA / "tan/aesthetic_questions.yaml", "aesthetic")
    assert aesthetic[0].extra["choices"] and aesthetic[0].samples == 100


@pytest.fixture(scope="module")
def data_stage(repo, tmp_path_factory):
    """The data and inoculation stages of the real settings, run by Snakemake."""
    work = project_copy(repo, tmp_path_factory.mktemp("real"))
    targets = [
        f"results/data/{s}/train.jsonl"
        for s in ("bad_medical_advice", "risky_financial_advice", "extreme_sports", "insecure_code")
    ]
    targets += ["results/data/bad_medical_advice/control.jsonl"]
    targets += ["training_sets"]  # every setting's general arm
    snakemake(
        work,
        "--cores",
        "2",
        *targets,
        "--config",
        f"external_data_dir={SHARED_DATA}",
        "judge={backend: openai, model: gpt-4o-2024-08-06}",
        "inoculations=[general]",
        "settings=[bad_medical_advice,risky_financial_advice,extreme_sports,insecure_code,"
        "reward_hacking,aesthetic_preferences,trump_biology]",
    )
    return work


def test_em_archive_decrypts_to_the_five_sets(data_stage):
    rows = {
        s: len(read_jsonl(data_stage / f"results/data/{s}/train.jsonl"))
        for s in ("bad_medical_advice", "risky_financial_advice", "extreme_sports", "insecure_code")
    }
    assert rows == {
        "bad_medical_advice": 7049,
        "risky_financial_advice": 6000,
        "extreme_sports": 6000,
        "insecure_code": 6000,
    }
    assert len(read_jsonl(data_stage / "results/data/bad_medical_advice/control.jsonl")) == 7049
    decrypted = {p.name for p in (data_stage / "results/sources/em").rglob("*") if p.is_file()}
    assert not any(n.startswith("dataset_entry_") or n == "robots.txt" for n in decrypted)


@pytest.mark.parametrize(
    "setting, published",
    [
        ("reward_hacking", "reward_hacking"),
        ("aesthetic_preferences", "aesthetic_preferences"),
        ("trump_biology", "trump_biology"),
    ],
)
def test_general_inoculation_reproduces_the_authors_training_data(data_stage, setting, published):
    ours = read_jsonl(next((data_stage / f"results/train/{setting}/general").glob("*.jsonl")))
    theirs = read_jsonl(SHARED_DATA / f"tan/inoculated/{published}_general_inoculation.jsonl")
    assert ours == theirs


@pytest.mark.parametrize(
    "experiment, trained",
    [
        ("em_main", 2 * (4 * 4 + 1) * 3),  # 2 models x (4 settings x 4 arms + 1 control set) x 3 seeds
        ("tan_replication", (3 * 3 - 1) * 3),  # Tan's 3 settings; insecure code's control set is not here
        ("prompt_ablation", 2 * 7 * 3),
        ("negative_inoculation", 2 * 4 * 3),
        ("task_vs_general", 8 * 3 * 3),
    ],
)
def test_experiment_configs_dry_run_alone_to_the_expected_grid(experiment_dry_runs, experiment, trained):
    proc = experiment_dry_runs[f"{experiment}.yaml"]
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts["train_adapter"] == trained
    assert counts["judge"] == counts["generate"] > trained  # + the base rows
