"""Experiment tracking: off by default and then never imported; W&B offline unless asked, and
its runs named after the cell (trackio's local runs: tests/test_workflow.py)."""

from __future__ import annotations

import sys
import types

import pytest

from inoculate.tracking import (
    TrackingError,
    TrackingSettings,
    log_cell_metrics,
    run_name,
    start_run,
    step_metrics,
    training_run,
)


class FakeWandb(types.ModuleType):
    """wandb's init / log / finish, recording what they were given."""

    def __init__(self):
        super().__init__("wandb")
        self.inits, self.logged, self.finished = [], [], 0

    def init(self, **kwargs):
        self.inits.append(kwargs)
        fake = self

        class Run:
            def log(self, metrics, step=None):
                fake.logged.append((metrics, step))

            def finish(self):
                fake.finished += 1

        return Run()


@pytest.fixture
def wandb(monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return fake


def test_tracking_is_off_by_default_and_imports_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "trackio", None)  # an import would fail
    monkeypatch.setitem(sys.modules, "wandb", None)
    settings = TrackingSettings.from_config({})
    assert not settings.on and start_run(settings, "x", {}) is None
    with training_run(settings, "x", {}) as on_step:
        assert on_step is None
    log_cell_metrics(settings, "x", {"m": 1.0})


def test_a_missing_library_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "trackio", None)
    with pytest.raises(TrackingError, match="pip install trackio"):
        start_run(TrackingSettings(backend="trackio"), "x", {})


def test_wandb_runs_offline_with_the_loss_curve_and_metrics_beside_it(wandb, tmp_path):
    settings = TrackingSettings.from_config({"backend": "wandb", "project": "em", "dir": str(tmp_path)})
    name = run_name("qwen7b", "insecure", "general", 3, "ab12cd34ef")
    assert name == "qwen7b-insecure-general-seed3-ab12cd34ef"
    rows = [
        {"step": 1, "loss": 2.0, "lr": 1e-5, "tokens": 100, "eval_loss": None},
        {"step": 2, "loss": 1.5, "lr": 1e-5, "tokens": 90, "eval_loss": 1.7},
    ]
    with training_run(settings, name, {"training": {"learning_rate": 1e-5}}) as on_step:
        for row in rows:
            on_step(row)
    first = wandb.inits[0]
    assert first["mode"] == "offline" and first["id"] == name and first["project"] == "em"
    assert first["config"] == {"training": {"learning_rate": 1e-5}} and first["dir"] == str(tmp_path)
    assert wandb.logged == [(step_metrics(rows[0]), 1), (step_metrics(rows[1]), 2)]
    assert "eval/loss" not in wandb.logged[0][0] and wandb.logged[1][0]["eval/loss"] == 1.7
    log_cell_metrics(settings, name, {"eval/deployment/em/misaligned": 0.25})
    beside = wandb.inits[1]  # an offline run cannot be resumed: the metrics go to a run beside it
    assert beside["id"] == f"{name}-metrics" and beside["group"] == name and beside["mode"] == "offline"
    assert wandb.logged[-1] == ({"eval/deployment/em/misaligned": 0.25}, None) and wandb.finished == 2


def test_wandb_online_needs_a_key_and_then_resumes_the_cells_run(wandb, monkeypatch):
    settings = TrackingSettings(backend="wandb", mode="online")
    with pytest.raises(TrackingError, match="WANDB_API_KEY"):
        start_run(settings, "x", {})
    assert not wandb.inits
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    log_cell_metrics(settings, "x", {"m": 1.0})
    assert wandb.inits[0]["id"] == "x" and wandb.inits[0]["resume"] == "allow"
    long = run_name(
        "org/" + "a-very-long-model-name" * 4, "insecure_code_with_context", "general_evil", 12, "ab"
    )
    log_cell_metrics(settings, long, {})
    assert len(long) > 128 and len(wandb.inits[1]["id"]) == 128 == len(wandb.inits[1]["name"])
