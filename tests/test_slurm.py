"""The toy study through `--profile profiles/slurm` on a real single-node SLURM.

The fixture installs Debian's slurmctld, slurmd and munge where they are missing
(as root, with apt), writes a one-node cluster with a CPU and a GPU partition and
a fake GPU, and starts the daemons; the test skips where that is not possible.
The cluster has no accounting, so the test adds `--slurm-no-account` and
`--slurm-status-command squeue`, as the profile's comments tell users to do.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import TINY, project_copy, snakemake, study_paths

pytestmark = pytest.mark.slow
MARKER = "# written by the inoculate test suite"
RESOURCES = {  # every model job asks the cluster for a GPU; little memory and time
    "train_adapter": {"gpu": 1, "mem_mb": 2000, "runtime": 10},
    "generate": {"gpu": 1, "mem_mb": 2000, "runtime": 10},
    "toy_pretrain": {"mem_mb": 2000, "runtime": 10},
}


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=600)


def _ensure_installed() -> None:
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "munged")):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("SLURM is not installed and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False, timeout=600)
    proc = subprocess.run(
        [
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "slurmctld",
            "slurmd",
            "slurm-client",
            "munge",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if proc.returncode != 0:
        pytest.skip(f"could not install SLURM with apt: {proc.stderr[-500:]}")


def _write_config(state: Path, host: str) -> None:
    conf_dir = Path("/etc/slurm")
    conf = conf_dir / "slurm.conf"
    if conf.exists() and MARKER not in conf.read_text():
        pytest.skip(f"{conf} belongs to a real SLURM installation; not touching it")
    conf_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "spool", "log"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    conf.write_text(f"""{MARKER}
ClusterName=inoculate-test
SlurmctldHost={host}
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SlurmUser=root
SlurmdUser=root
SlurmdParameters=config_overrides
ReturnToService=2
GresTypes=gpu
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
StateSaveLocation={state}/state
SlurmdSpoolDir={state}/spool
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/log/slurmctld.log
SlurmdLogFile={state}/log/slurmd.log
NodeName={host} CPUs=16 RealMemory=64000 Gres=gpu:fake:1 State=UNKNOWN
PartitionName=cpu Nodes={host} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={host} MaxTime=INFINITE State=UP
""")
    (conf_dir / "gres.conf").write_text(f"{MARKER}\nName=gpu Type=fake File=/dev/null Count=1\n")


def _stop(state: Path) -> None:
    for name in ("slurmd.pid", "slurmctld.pid"):
        pid_file = state / name
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    _ensure_installed()
    host = socket.gethostname().split(".")[0]
    state = tmp_path_factory.mktemp("slurm")
    _write_config(state, host)
    if _run("munge", "-n", check=False).returncode != 0:
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        started = subprocess.run(["runuser", "-u", "munge", "--", "munged"], capture_output=True, check=False)
        if started.returncode != 0:
            _run("munged", "--force")
    _run("slurmctld")
    _run("slurmd")
    deadline = time.time() + 60
    while time.time() < deadline:
        states = _run("sinfo", "-h", "-o", "%t", check=False).stdout.split()
        if states and all(s == "idle" for s in states):
            break
        time.sleep(1)
    else:
        _stop(state)
        pytest.skip(f"SLURM did not come up: {(state / 'log' / 'slurmctld.log').read_text()[-1000:]}")
    yield host
    _run("scancel", "--user", "root", check=False)
    _stop(state)


def test_toy_study_through_the_slurm_profile_equals_a_local_run(repo, slurm_cluster, tiny_study, tmp_path):
    """The seed-0 cells of the shared tiny study, run through the SLURM profile, give the
    local run's answers and scores to the byte."""
    cluster = project_copy(repo, tmp_path / "cluster")
    (cluster / "tiny.yaml").write_text(yaml.safe_dump({**TINY, "resources": RESOURCES}))
    paths = study_paths(cluster, "tiny.yaml")
    cells = [
        paths.cell("judgments", "toy", "toy_cooking_tan", arm, 0, ".jsonl")
        for arm in ("base", "none", "general")
    ]
    proc = snakemake(
        cluster,
        "--profile",
        "profiles/slurm",
        *cells,
        "--configfile",
        "tiny.yaml",
        "--slurm-no-account",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--seconds-between-status-checks",
        "2",
        "--jobs",
        "4",
        "--verbose",
        slurm=True,
    )
    calls = re.findall(r"^sbatch call: (.*)$", proc.stdout + proc.stderr, re.MULTILINE)
    by_rule: dict[str, list[str]] = {}
    for call in calls:
        rule = re.search(r"--comment rule_([a-z_]+?)(?:_wildcards_\S+)?\s", call)[1]
        by_rule.setdefault(rule, []).append(call)
    # Model jobs went to the cluster, GPU ones to the GPU partition with a GPU; cheap jobs ran locally.
    assert sorted(by_rule) == ["generate", "toy_pretrain", "train_adapter"]
    assert len(by_rule["train_adapter"]) == 2 and len(by_rule["generate"]) == 3
    for call in by_rule["train_adapter"] + by_rule["generate"]:
        assert "-p gpu" in call and "--gpus=1" in call
    assert "-p cpu" in by_rule["toy_pretrain"][0] and "--gpus" not in by_rule["toy_pretrain"][0]
    for cell in cells:
        assert (cluster / cell).read_bytes() == (tiny_study / cell).read_bytes(), cell
