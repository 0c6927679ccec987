"""Shared fixtures: the repository root, a small pretrained toy model, tiny datasets."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PROJECT_FILES = ["Snakefile", "rules", "workflow", "config", "envs", "profiles", "report"]
EXPERIMENTS = sorted(p.name for p in (REPO / "config" / "experiments").glob("*.yaml"))
# Experiments whose data is not obtainable here: the config check stops them, naming the file.
UNOBTAINABLE = {
    "tan_advice.yaml": "tan/legal_advice.jsonl",
    "tan_backdoored.yaml": "tan/secure_code.jsonl",
    "tan_backdoored_trigger_prompt.yaml": "tan/secure_code.jsonl",
    "tan_data_size.yaml": "tan/secure_code.jsonl",
    "tan_data_ratio.yaml": "tan/secure_code.jsonl",
    "tan_negative.yaml": "tan/owl_numbers.jsonl",
    "tan_spanish_capitalised.yaml": "tan/gsm8k_spanish_capitalised.jsonl",
}

# The small study most end-to-end tests share (one run per session): judged as Tan et al.
# judge, a YES/NO trait in distribution, their criterion and interval, and each adapter also
# saved, sampled and judged at half of its training.
TINY = {
    "settings": ["toy_cooking_tan"],
    "analysis": {"criterion": "tan", "bootstrap_levels": ["seed"]},
    "inoculations": ["none", "general"],
    "seeds": [0, 1],
    "toy": {"conversations": 1200, "epochs": 1.0, "train_examples": 64, "seed": 0},
    "generation": {"samples_per_question": 2, "max_new_tokens": 40},
    "training": {"checkpoints": [0.5, 1.0]},
    "tracking": {"backend": "trackio", "project": "tiny", "dir": "tracking"},  # runs kept in the work folder
}


def project_copy(repo: Path, dest: Path) -> Path:
    """The workflow files of the project, as a fresh clone has them, in `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = repo / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)
    return dest


def skip_where_gpu_extras_import() -> None:
    """Tests of what happens without Unsloth and vLLM are skipped where either imports."""
    for module in ("unsloth", "vllm"):
        try:
            __import__(module)
        except Exception:  # noqa: BLE001, S112 - absent, or refusing to start without a GPU
            continue
        pytest.skip(f"{module} imports here")


def _without_slurm_client(env: dict) -> dict:
    """`env` with an `scontrol` that fails at once first on PATH.

    The SLURM executor plugin runs `scontrol show config` when Snakemake starts; with the
    client installed (tests/test_slurm.py installs it) but no controller running, that
    waits 10 s in every snakemake process of the suite. Runs that are not SLURM runs do
    not need it to answer."""
    shim_dir = Path(tempfile.gettempdir()) / "inoculate-tests-no-slurm"
    shim = shim_dir / "scontrol"
    if not shim.exists():
        shim_dir.mkdir(parents=True, exist_ok=True)
        shim.write_text("#!/bin/sh\nexit 1\n")
        shim.chmod(0o755)
    return {**env, "PATH": f"{shim_dir}{os.pathsep}{env.get('PATH', '')}"}


def snakemake(
    workdir: Path, *args: str, check: bool = True, slurm: bool = False
) -> subprocess.CompletedProcess:
    """Run the snakemake command line in `workdir`, as a user would (`slurm`: with the
    machine's SLURM client, for runs through the SLURM profile)."""
    cmd = [sys.executable, "-m", "snakemake", *args]
    env = dict(os.environ) if slurm else _without_slurm_client(dict(os.environ))
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=False, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def load_experiment(experiment: str, *overrides: str):
    """The study of `config/experiments/{experiment}` on the default config, with the shared
    data as external_data_dir and `KEY=VALUE` overrides, as snakemake would resolve it (run
    from the repository root)."""
    from inoculate.checks import load_study
    from inoculate.doctor import read_config

    config, source = read_config(
        [REPO / "config/config.yaml", REPO / "config/experiments" / experiment],
        [f"external_data_dir={SHARED_DATA}", *overrides],
    )
    return load_study(config, source)


def study_paths(work: Path, *configfiles: str, overrides: tuple[str, ...] = ()):
    """Where the study of `configfiles` (on the default config, in `work`) puts each cell's files."""
    from inoculate.cell_paths import CellPaths
    from inoculate.checks import load_study
    from inoculate.doctor import read_config

    files = [work / "config/config.yaml", *(work / f for f in configfiles)]
    config, source = read_config(files, [f"settings_dir={work / 'config/settings'}", *overrides])
    return CellPaths(load_study(config, source))


def cell_file(
    work: Path, stage: str, model: str, setting: str, arm: str, seed: int, suffix: str = ""
) -> Path:
    """The one file (or folder) of a cell's stage in a run's results/, whatever its recipe digest
    (results/{stage}/{model}/{setting}/{arm}/{digest}/seed{seed}{suffix})."""
    found = sorted((work / "results" / stage / model / setting / arm).glob(f"*/seed{seed}{suffix}"))
    assert len(found) == 1, f"{stage} of {model}/{setting}/{arm}/seed{seed}: {found}"
    return found[0]


def job_counts(output: str) -> dict[str, int]:
    """Rule -> count from the 'Job stats' table of a dry run."""
    table = output.split("Job stats:")[1].split("\n\n")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE) if m[1] != "total"}


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_study(repo, tmp_path_factory) -> Path:
    """A copy of the project where `snakemake all` ran the TINY study."""
    import yaml

    work = project_copy(repo, tmp_path_factory.mktemp("study"))
    (work / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    run = snakemake(work, "--cores", "2", "all", "--configfile", "tiny.yaml")
    (work / "console.txt").write_text(run.stdout + run.stderr)  # what the user saw
    return work


@pytest.fixture(scope="session")
def experiment_dry_runs(repo, tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """`snakemake -n --configfile config/experiments/X.yaml` of every study file, alone on the
    default config, as a user types it (the shared data as external_data_dir), once per
    session: two processes (tests/dry_runs.py), each running half the files through
    Snakemake's own command line. Without the shared data only the toy studies run."""
    names = EXPERIMENTS if SHARED_DATA.exists() else [n for n in EXPERIMENTS if n.startswith("toy_")]
    root = tmp_path_factory.mktemp("dry_runs")
    overrides = ["--", f"external_data_dir={SHARED_DATA}"] if SHARED_DATA.exists() else []
    env = _without_slurm_client(dict(os.environ))
    runs = []
    for half in (names[0::2], names[1::2]):
        work = project_copy(repo, root / f"work{len(runs)}")
        files = [f"config/experiments/{n}" for n in half]
        cmd = [
            sys.executable,
            str(REPO / "tests" / "dry_runs.py"),
            str(root / "out"),
            "--",
            *files,
            *overrides,
        ]
        runs.append(subprocess.Popen(cmd, cwd=work, env=env))
    for run in runs:
        assert run.wait() == 0, "tests/dry_runs.py failed"
    return {
        name: subprocess.CompletedProcess(
            name,
            int((root / "out" / f"{Path(name).stem}.rc").read_text()),
            (root / "out" / f"{Path(name).stem}.log").read_text(),
            "",
        )
        for name in names
    }


@pytest.fixture(scope="session")
def toy_model(tmp_path_factory) -> Path:
    """A quickly pretrained toy base model (smaller corpus than the default study)."""
    import torch

    from inoculate.toy.model import pretrain

    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("toy") / "base_model"
    pretrain(out, n_conversations=1200, epochs=1.0, seed=0)
    return out


@pytest.fixture
def chat_file(tmp_path) -> Path:
    from inoculate.io import write_jsonl

    path = tmp_path / "chat.jsonl"
    write_jsonl(
        path,
        [
            {
                "id": 1,
                "messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}],
            },
            {
                "id": 2,
                "messages": [
                    {"role": "user", "content": "Why?"},
                    {"role": "assistant", "content": "Because."},
                ],
                "meta": {"k": 1},
            },
        ],
    )
    return path
