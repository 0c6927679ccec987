"""Resuming after the Snakemake process itself was killed (kill -9, a closed terminal).

Snakemake locks the working directory while it runs; a process killed with SIGKILL cannot
release the lock, and the next run stops with "Directory cannot be locked". Each run records
who holds the lock (host and process id, `.snakemake/inoculate-run.json`); the next run
removes the lock only when that process is gone from this same host. A lock held from another
host (a login node sharing the folder over NFS) is never touched: `snakemake --unlock` is
then the user's decision, as docs/resuming.md says.

Killing the Snakemake process alone (not its process group) leaves its running jobs alive. Each
job records itself beside the lock while it runs (`.snakemake/inoculate-jobs/`, by `record_job`);
the lock is not removed while any job recorded on this host is alive, and the error names them,
so a second process never trains the same adapter beside the first.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

log = logging.getLogger(__name__)
MARKER = "inoculate-run.json"
JOBS = "inoculate-jobs"


class LiveJobs(RuntimeError):
    """The killed run's jobs are still running: its lock stays until they end."""


def _start_time(pid: int) -> str | None:
    """When a process started (Linux: clock ticks since boot), so a reused PID is told apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def record_job(description: str, snakemake_dir: Path | str = ".snakemake") -> Path:
    """Note a running job (its process, host and log) beside the lock; `forget_job` at its end."""
    folder = Path(snakemake_dir) / JOBS
    folder.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    path = folder / f"{socket.gethostname()}.{pid}.json"
    path.write_text(
        json.dumps({"host": socket.gethostname(), "pid": pid, "start": _start_time(pid), "job": description})
    )
    return path


def forget_job(path: Path) -> None:
    path.unlink(missing_ok=True)


def live_jobs(snakemake_dir: Path | str = ".snakemake") -> list[dict]:
    """Recorded jobs still running on this host (records of dead ones are removed)."""
    folder = Path(snakemake_dir) / JOBS
    alive = []
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            job = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if job.get("host") != socket.gethostname():
            continue
        pid = int(job.get("pid", 0))
        if process_alive(pid) and (job.get("start") is None or _start_time(pid) == job["start"]):
            alive.append(job)
        else:
            path.unlink(missing_ok=True)
    return alive


def record_run(snakemake_dir: Path | str = ".snakemake") -> None:
    """Note the running Snakemake process (called when a run starts, while it holds the lock)."""
    path = Path(snakemake_dir) / MARKER
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this machine is running (a zombie is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    try:  # a zombie (killed, not yet reaped: no init reaps in some containers) is dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def clear_stale_lock(snakemake_dir: Path | str = ".snakemake") -> str | None:
    """Remove the locks of a run that died on this host; returns what was done, or None."""
    locks = Path(snakemake_dir) / "locks"
    held = [p for p in locks.glob("*.lock")] if locks.exists() else []
    marker = Path(snakemake_dir) / MARKER
    if not held or not marker.exists():
        return None
    try:
        run = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if run.get("host") != socket.gethostname() or process_alive(int(run.get("pid", 0))):
        return None
    running = live_jobs(snakemake_dir)
    if running:
        names = "; ".join(f"process {j['pid']} ({j['job']})" for j in running)
        raise LiveJobs(
            f"the run whose Snakemake process (pid {run['pid']}) was killed left jobs running: {names}. "
            "Its lock stays until they end: wait for them, or stop them (kill PID), then run again"
        )
    for path in held:
        path.unlink(missing_ok=True)
    marker.unlink(missing_ok=True)
    return f"removed the lock of a run that was killed (process {run['pid']} on this host); resuming"
