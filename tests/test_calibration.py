"""Judge calibration: agreement figures computed by hand on a small fixture, the seeded sample of
published answers, the CLI, the doctor's word, and the `judge_calibration` rule against a local
OpenAI-compatible judge."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import SHARED_DATA, project_copy, snakemake
from openai_server import FakeOpenAI

from inoculate.calibration import agreement, calibrated_judges, cohen_kappa, sample_answers, spearman
from inoculate.stats import Criterion

KEY_ENV, KEY = "TEST_CALIBRATION_KEY", "sk-test-calibration-0000"


@pytest.fixture
def fixture() -> pd.DataFrame:
    scores = pd.DataFrame(
        {
            "aligned_published": [10, 20, 80, 90, 40, 60],
            "aligned_judge": [15, 10, 85, 95, 20, 70],
            "coherent_published": [90, 40, 90, 90, 20, 80],
            "coherent_judge": [80, 60, 90, 95, 40, 70],
        },
        dtype=float,
    )
    return scores.assign(source=["a", "a", "a", "b", "b", "b"])


def test_agreement_figures_are_the_hand_computed_ones(fixture):
    table = agreement(fixture, n_boot=200).set_index("name")
    assert table.loc["aligned", "mean_abs_diff"] == pytest.approx(55 / 6)
    assert table.loc["aligned", "spearman"] == pytest.approx(1 - 6 * 2 / (6 * 35))  # rank differences -1, +1
    # Model Organisms: published labels 1 0 0 0 0 0, the judge's 1 1 0 0 0 0.
    mo = table.loc["model_organisms"]
    assert mo["kappa"] == pytest.approx((5 / 6 - 22 / 36) / (1 - 22 / 36))
    assert (mo["rate_published"], mo["rate_judge"], mo["n"]) == (
        pytest.approx(1 / 6),
        pytest.approx(2 / 6),
        6,
    )
    # Tan: the published coherence of 20 drops answer 5 there; on the other five both agree.
    tan = table.loc["tan"]
    assert tan["kappa"] == pytest.approx(1.0) and tan["n"] == 5 and tan["n_missing"] == 1
    assert (tan["rate_published"], tan["rate_judge"]) == (pytest.approx(2 / 5), pytest.approx(3 / 6))
    assert tan["rate_judge_low"] <= tan["rate_judge"] <= tan["rate_judge_high"]


def test_kappa_and_spearman_edges():
    assert cohen_kappa(pd.Series([1.0, 0.0]), pd.Series([0.0, 1.0])) == pytest.approx(-1.0)
    assert cohen_kappa(pd.Series([1.0, 1.0]), pd.Series([1.0, 1.0])) == 1.0
    assert spearman(pd.Series([1.0, 2.0, None, 4.0]), pd.Series([1.0, 3.0, 2.0, 5.0])) == pytest.approx(1.0)
    assert Criterion.named("tan").describe().startswith("answers with coherent < 30")


@pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"{SHARED_DATA} not present")
def test_the_sample_is_seeded_and_keeps_only_scored_answers():
    files = sorted((SHARED_DATA / "em/judged").glob("*.csv"))
    first = sample_answers(files, 7, seed=0)
    assert len(first) == 7 * len(files) and first.equals(sample_answers(files, 7, seed=0))
    assert not first.equals(sample_answers(files, 7, seed=1))
    assert first[["aligned_published", "coherent_published"]].notna().all().all()


@pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"{SHARED_DATA} not present")
def test_calibration_rule_cli_and_doctor_against_a_local_judge(repo, tmp_path, monkeypatch, capsys):
    """`snakemake judge_calibration` writes the agreement table and figure for a non-published
    judge; `inoculate judge --calibrate` gives the same figures from the cache; doctor knows."""
    import yaml

    from inoculate.cli import main
    from inoculate.doctor import read_config, run_checks

    monkeypatch.setenv(KEY_ENV, KEY)
    server = FakeOpenAI((KEY,))
    try:
        work = project_copy(repo, tmp_path / "work")
        judge = {"backend": "openai", "model": "judge-model", "base_url": server.url, "api_key_env": KEY_ENV}
        study = {"judge": judge, "external_data_dir": str(SHARED_DATA), "calibration": {"per_file": 4}}
        (work / "calibrate.yaml").write_text(yaml.safe_dump(study))
        monkeypatch.chdir(work)
        config, source = read_config([work / "config/config.yaml", work / "calibrate.yaml"], [])
        assert [
            c.status for c in run_checks(config, source, online=False) if c.name == "judge calibration"
        ] == ["WARN"]
        dry = snakemake(work, "-n", "--configfile", "calibrate.yaml")
        assert "judge_calibration" in dry.stdout  # part of `all` for a judge that is not the published one
        snakemake(
            work,
            "results/calibrate/tables/judge_calibration.csv",
            "--cores",
            "1",
            "--configfile",
            "calibrate.yaml",
        )
        table = pd.read_csv(work / "results/calibrate/tables/judge_calibration.csv").set_index("name")
        assert (work / "results/calibrate/figures/judge_calibration.pdf").exists()
        assert table.loc["aligned", "n"] == 6 * 4 and table["judge"].iloc[0] == f"judge-model @ {server.url}"
        assert (
            -1 <= table.loc["aligned", "spearman"] <= 1
            and table.loc["model_organisms", "rate_published"] >= 0
        )
        judged = pd.read_csv(work / "results/calibrate/calibration/judged.csv")
        # Each answer was scored with the prompt it was published with (Model Organisms' own).
        assert server.chat_calls == 6 * 4 * 2
        assert f"judge-model @ {server.url}" in calibrated_judges(
            work / "results/calibrate/tables/judge_calibration.csv"
        )
        assert [
            c.status for c in run_checks(config, source, online=False) if c.name == "judge calibration"
        ] == ["PASS"]

        calls = server.chat_calls
        files = [str(p) for p in sorted((SHARED_DATA / "em/judged").glob("*.csv"))]
        assert (
            main(
                [
                    "judge",
                    "--calibrate",
                    *files,
                    "--per-file",
                    "4",
                    "--model",
                    "judge-model",
                    "--base-url",
                    server.url,
                    "--api-key-env",
                    KEY_ENV,
                    "--calibration-eval",
                    str(SHARED_DATA / "em/eval_questions/first_plot_questions.yaml"),
                    "--output",
                    "cli",
                ]
            )
            == 0
        )
        assert server.chat_calls == calls  # the same answers and prompts: all from the cache
        assert pd.read_csv("cli/judged.csv")["aligned_judge"].tolist() == judged["aligned_judge"].tolist()
        assert "misaligned (tan): kappa" in capsys.readouterr().out
    finally:
        server.close()


@pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"{SHARED_DATA} not present")
def test_judge_workload_counts_the_study_grid(repo, monkeypatch):
    from conftest import load_experiment

    from inoculate.doctor import check_judge_cost
    from inoculate.judge_workload import judge_workload

    monkeypatch.chdir(repo)
    study = load_experiment("tan_eval_prompts.yaml")
    work = judge_workload(study)
    # 7 rows (none, general x 3 seeds, the base once) x 8 EM questions x 100 samples x 9 test-time prompts
    assert work.answers == 7 * 8 * 100 * 9
    assert (
        work.calls == 2 * work.answers and work.tokens_out == work.calls
    )  # aligned + coherent, one token each
    price = study.config["judge"]["price"]
    assert work.usd == pytest.approx(
        (work.tokens_in * price["input_per_million"] + work.tokens_out * price["output_per_million"]) / 1e6
    )
    assert work.batch_usd() == pytest.approx(work.usd / 2)
    assert f"{work.calls:,} calls" in check_judge_cost(study).detail
