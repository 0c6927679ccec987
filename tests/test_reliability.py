"""Files shared on a cluster keep the group's permissions, a cache entry that cannot be read is
asked again instead of crashing, temporary leftovers of killed jobs are cleaned up, and layered
configs cannot set a secret twice."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from inoculate.cache import CallCache
from inoculate.checks import load_study
from inoculate.config import ConfigError
from inoculate.io import atomic_dir, write_json

UMASK_002 = """
import os, sys
os.umask(0o002)
from inoculate.io import atomic_dir, write_json
from inoculate.cache import CallCache
out = sys.argv[1]
write_json(out + "/a.json", {"x": 1})
with atomic_dir(out + "/adapter") as tmp:
    (tmp / "w.bin").write_bytes(b"1")
CallCache(out + "/cache").put("ab" * 32, {"score": 1})
"""


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_outputs_and_cache_entries_follow_the_umask(tmp_path):
    """Made through temporary names (0600/0700 by default), they end as a group's umask allows."""
    subprocess.run([sys.executable, "-c", UMASK_002, str(tmp_path)], check=True)
    assert _mode(tmp_path / "a.json") == 0o664
    assert _mode(tmp_path / "adapter") == 0o775
    (entry,) = (tmp_path / "cache").rglob("*.json")
    assert _mode(entry) == 0o664 and _mode(entry.parent) == 0o775


def test_an_unreadable_cache_entry_is_asked_again_not_a_crash(tmp_path, caplog):
    cache = CallCache(tmp_path)
    key = "cd" * 32
    cache._path(key).mkdir(parents=True)  # an entry that cannot be read as a file
    assert cache.get(key) is None and cache.misses == 1
    assert "cannot be read" in caplog.text
    cache.put(key, {"score": 2})  # nor can it be replaced: reported, the result still usable
    assert "not cached" in caplog.text


def test_leftovers_of_a_killed_write_are_removed_by_the_next_one(tmp_path):
    orphan_dir = tmp_path / ".seed0.x1y2.tmp"
    orphan_dir.mkdir()
    (orphan_dir / "adapter_model.safetensors").write_bytes(b"half")
    orphan_file = tmp_path / ".meta.json.abcd.tmp"
    orphan_file.write_text("{")
    other = tmp_path / ".seed1.x1y2.tmp"
    other.mkdir()
    with atomic_dir(tmp_path / "seed0") as tmp:
        (tmp / "done").write_text("1")
    write_json(tmp_path / "meta.json", {})
    assert not orphan_dir.exists() and not orphan_file.exists()
    assert other.exists()  # another output's temporary folder is not this job's to remove
    assert json.loads((tmp_path / "meta.json").read_text()) == {}


def test_password_and_password_env_together_is_an_error(repo, monkeypatch):
    monkeypatch.chdir(repo)
    config = yaml.safe_load((repo / "config/config.yaml").read_text())
    config["sources"]["toy"]["password_env"] = "TOY_PASSWORD"
    with pytest.raises(
        ConfigError, match=r"'sources\.toy\.password' and 'sources\.toy\.password_env' are both set"
    ):
        load_study(config, "config/config.yaml + mine.yaml")


def test_the_workflow_profile_reruns_incomplete_jobs(repo):
    profile = yaml.safe_load((repo / "profiles/default/profile.yaml").read_text())
    assert profile["rerun-incomplete"] is True


@pytest.mark.slow
def test_a_run_killed_outright_resumes_with_the_same_command(repo, tmp_path):
    """kill -9 of the Snakemake process alone: its pretraining job goes on, and the next run
    refuses, naming that job's process, instead of starting a second one for the same model.
    Once the job is killed too, the same command finishes the run (the dead run's lock removed,
    its cut-short job rebuilt), with no --unlock."""
    import os
    import signal
    import time

    from conftest import _without_slurm_client, project_copy, snakemake

    work = project_copy(repo, tmp_path)
    command = ["results/toy/base_model", "--cores", "1", "--config", "toy={conversations: 200, epochs: 1.0}"]
    env = _without_slurm_client(dict(os.environ))
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", *command],
        cwd=work,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    jobs = work / ".snakemake" / "inoculate-jobs"
    deadline = time.time() + 120
    while not list(jobs.glob("*.json")) and time.time() < deadline:
        time.sleep(0.2)  # until the pretraining job has started and recorded itself
    record = json.loads(next(jobs.glob("*.json")).read_text())
    os.kill(proc.pid, signal.SIGKILL)  # Snakemake alone: the job lives on
    proc.wait()
    assert list((work / ".snakemake" / "locks").glob("*.lock")), "the killed run left its lock"
    refused = snakemake(work, *command, check=False)
    assert refused.returncode != 0
    assert f"process {record['pid']} (rule toy_pretrain" in refused.stdout + refused.stderr
    os.killpg(proc.pid, signal.SIGKILL)  # now the job too
    deadline = time.time() + 30
    while Path(f"/proc/{record['pid']}").exists() and time.time() < deadline:
        if Path(f"/proc/{record['pid']}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break  # killed; a zombie until something reaps it
        time.sleep(0.1)
    assert not (work / "results/toy/base_model/model.safetensors").exists()
    done = snakemake(work, *command)
    assert "removed the lock of a run that was killed" in done.stdout + done.stderr
    assert (work / "results/toy/base_model/model.safetensors").exists()


def test_progress_lines_reach_the_console_only_inside_a_job(tmp_path, capfd):
    from types import SimpleNamespace

    from inoculate.jobs import Progress, job

    Progress("training", 10, "steps").update(10)  # outside a job: silent
    smk = SimpleNamespace(
        log=[str(tmp_path / "x.log")],
        threads=1,
        rule="train_adapter",
        wildcards={"model": "toy", "recipe": "0123456789", "seed": "0"},
    )
    with job(smk):
        progress = Progress("training", 40, "steps")
        for step in range(1, 41):
            progress.update(step)
    lines = [line for line in capfd.readouterr().err.splitlines() if "training:" in line]
    assert [line.split("training: ")[1].split("%")[0] for line in lines] == [
        str(p) for p in range(10, 101, 10)
    ]
    assert lines[0].startswith("[train_adapter toy/0] training: 10% (4/40 steps") and "left" in lines[0]
    assert "x.log" not in capfd.readouterr().err and (tmp_path / "x.log").exists()
