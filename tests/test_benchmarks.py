"""The GPU benchmark's steps run (here on the CPU, with a stand-in for vLLM's API): what a GPU
session runs with benchmarks/gpu.sh is not first tried there. Its figures are measured, never
asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO
from test_model_server import FAKE_LORA, FAKE_VLLM

SCRIPT = REPO / "benchmarks" / "gpu_backends.py"


def test_gpu_benchmark_steps_run_and_report(tmp_path):
    site = tmp_path / "site"
    (site / "vllm" / "lora").mkdir(parents=True)
    (site / "vllm" / "__init__.py").write_text(FAKE_VLLM)
    (site / "vllm" / "lora" / "__init__.py").write_text("")
    (site / "vllm" / "lora" / "request.py").write_text(FAKE_LORA)
    env = {
        **os.environ,
        "PYTHONPATH": f"{site}:{REPO / 'src'}",
        "FAKE_VLLM_LOG": str(tmp_path / "vllm.log"),
    }
    out = tmp_path / "bench"

    def step(*args: str) -> None:
        proc = subprocess.run(
            [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, check=False
        )
        assert proc.returncode == 0, proc.stderr[-3000:]

    step("prepare", str(out), "--adapters", "2", "--device", "cpu")
    step("train", str(out), "--backend", "transformers", "--device", "cpu")
    step("generate", str(out), "--adapters", "0", "--device", "cpu")
    step("generate", str(out), "--adapters", "all", "--device", "cpu")
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == ["prepare", "train", "generate", "generate"]
    assert rows[1]["steps"] > 0 and rows[3]["n_cells"] == 2 and rows[3]["new_tokens"] > 0
    engines = [line for line in (tmp_path / "vllm.log").read_text().splitlines() if '"engine"' in line]
    assert len(engines) == 2  # one per generate step: the shared engine served both cells
    report = subprocess.run(
        [sys.executable, str(SCRIPT), "report", str(out)], capture_output=True, text=True, check=True
    ).stdout
    assert "| training, transformers |" in report and "one engine over one per cell" in report
