"""Checkpoints during training: their steps, their adapters beside the final one, and a run
killed at 60% that resumes from its 50% checkpoint and ends as an uninterrupted run."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from inoculate.checkpoints import sampled_labels, state_dir, steps, validate
from inoculate.io import write_jsonl
from inoculate.toy import corpus
from inoculate.train import TrainSettings, train_lora

SETTINGS = TrainSettings(
    learning_rate=1e-3, epochs=2.0, batch_size=4, eval_fraction=0.1, checkpoints=[0.25, 0.5, 1.0]
)


def test_checkpoint_steps_and_labels():
    assert steps([0.25, 0.5, 1.0], 10) == {3: "p0.25", 5: "p0.5"}  # a fraction of the steps, rounded up
    assert steps([0.5, 4], 8) == {4: "p0.5"}  # the same step twice is saved once
    assert sampled_labels([0.25, 100, 1.0]) == ["p0.25", "step100"]
    for bad, message in (
        ([0], "not a step"),
        ([1.5], r"not in \(0, 1\]"),
        (["x"], "neither"),
        ([True], "neither"),
    ):
        with pytest.raises((ValueError, TypeError), match=message):
            validate(bad)
    with pytest.raises(ValueError, match="past the end of training"):
        steps([50], 10)


@pytest.mark.slow
def test_a_run_killed_at_60_percent_resumes_from_its_50_percent_checkpoint(toy_model, tmp_path, caplog):
    data = tmp_path / "train.jsonl"
    write_jsonl(data, corpus.topic_dataset("cooking", "harmful", 40))
    full = train_lora(str(toy_model), data, tmp_path / "full" / "seed0", SETTINGS, seed=0)
    total = full["steps"]  # 36 examples (4 held out) x 2 epochs / 4 = 18 steps
    assert total == 18
    adapter = tmp_path / "full" / "seed0"
    for name, step in (("p0.25", 5), ("p0.5", 9)):
        meta = json.loads((adapter / "checkpoints" / name / "meta.json").read_text())
        assert (
            meta["step"] == step
            and meta["epoch"] == pytest.approx(step / 9)
            and meta["eval_loss"] is not None
        )
        assert (adapter / "checkpoints" / name / "adapter_model.safetensors").exists()
    assert not (adapter / "checkpoints" / "p1").exists() and not state_dir(adapter).exists()

    killed = tmp_path / "killed" / "seed0"
    script = textwrap.dedent(f"""
        import os, signal, torch
        torch.set_num_threads({torch.get_num_threads()})
        from pathlib import Path
        from inoculate.train import TrainSettings, train_lora
        settings = TrainSettings(learning_rate=1e-3, epochs=2.0, batch_size=4, eval_fraction=0.1,
                                 checkpoints=[0.25, 0.5, 1.0])
        def die(row):
            if row["step"] == 11:  # 60% of 18 steps: killed as kill -9 would
                os.kill(os.getpid(), signal.SIGKILL)
        train_lora({str(toy_model)!r}, Path({str(data)!r}), Path({str(killed)!r}), settings, seed=0, on_step=die)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=dict(os.environ), check=False
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not killed.exists() and sorted(p.name for p in state_dir(killed).iterdir()) == ["p0.25", "p0.5"]

    # A changed recipe is another run: the saved state of this one is not resumed.
    stale = tmp_path / "stale" / "seed0"
    shutil.copytree(state_dir(killed), state_dir(stale))
    other = TrainSettings(learning_rate=2e-3, epochs=2.0, batch_size=4, eval_fraction=0.1, checkpoints=[0.5])
    with caplog.at_level(logging.WARNING, logger="inoculate.checkpoints"):
        train_lora(str(toy_model), data, stale, other, seed=0)
    assert "resuming" not in caplog.text and not state_dir(stale).exists()

    with caplog.at_level(logging.WARNING, logger="inoculate.checkpoints"):
        resumed = train_lora(str(toy_model), data, killed, SETTINGS, seed=0)
    assert "resuming training from checkpoint p0.5 (step 9)" in caplog.text
    assert resumed["steps"] == total and resumed["final_loss"] == pytest.approx(full["final_loss"], abs=1e-6)
    a, b = load_file(adapter / "adapter_model.safetensors"), load_file(killed / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert (killed / "checkpoints" / "p0.5" / "meta.json").exists() and not state_dir(killed).exists()


def test_adapter_files_are_written_with_the_umask(toy_model, tmp_path):
    """safetensors writes 0600 whatever the umask: the adapter folder (weights, checkpoints and
    their training state) is given the umask's permissions, so a group sharing results reads it.
    Under umask 002 here; the toy base model, saved by this session under its own umask (022 in
    CI), is checked the same way."""
    current = os.umask(0)
    os.umask(current)
    for path in (p for p in toy_model.rglob("*") if p.is_file()):
        assert path.stat().st_mode & 0o777 == 0o666 & ~current, path
    umask = 0o002
    data = tmp_path / "train.jsonl"
    write_jsonl(data, corpus.topic_dataset("cooking", corpus.HARMFUL, 24))
    out = tmp_path / "adapter"
    code = textwrap.dedent(
        f"""
        import os
        os.umask({umask})
        from pathlib import Path
        from inoculate.train import TrainSettings, train_lora
        settings = TrainSettings(learning_rate=1e-3, epochs=1.0, batch_size=4, checkpoints=[0.5])
        train_lora({str(toy_model)!r}, Path({str(data)!r}), Path({str(out)!r}), settings, seed=0)
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "adapter_model.safetensors" for p in files)
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
    for folder in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        assert folder.stat().st_mode & 0o777 == 0o777 & ~umask, folder
