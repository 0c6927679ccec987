"""The code style CI enforces, from the same test command: ruff (lint and format) for Python,
snakefmt for the Snakefile and rules (`snakemake --lint` is in test_workflow.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PYTHON = ["src", "tests", "workflow", "benchmarks"]
SNAKE = ["Snakefile", "rules"]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", *PYTHON],
        ["ruff", "format", "--check", *PYTHON],
        ["snakefmt", "--check", *SNAKE],
    ],
    ids=["ruff-check", "ruff-format", "snakefmt"],
)
def test_style(repo, command):
    tool = shutil.which(command[0], path=str(Path(sys.executable).parent)) or shutil.which(command[0])
    assert tool, f"{command[0]} is not installed: pip install -e '.[test]'"
    proc = subprocess.run([tool, *command[1:]], cwd=repo, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{' '.join(command)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
