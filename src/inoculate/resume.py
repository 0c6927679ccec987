"""Resuming after the Snakemake process itself was killed (kill -9, a closed terminal).

Snakemake locks the working directory while it runs; a process killed with SIGKILL cannot
release the lock, and the next run stops with "Directory cannot be locked". Each run records
who holds the lock (host and process id, `.snakemake/inoculate-run.json`); the next run
removes the lock only when that process is gone from this same host. A lock held from another
host (a login node sharing the folder over NFS) is never touched: `snakemake --unlock` is
then the user's decision, as the README says.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

log = logging.getLogger(__name__)
MARKER = "inoculate-run.json"


def record_run(snakemake_dir: Path | str = ".snakemake") -> None:
    """Note the running Snakemake process (called when a run starts, while it holds the lock)."""
    path = Path(snakemake_dir) / MARKER
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
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
    if run.get("host") != socket.gethostname() or _alive(int(run.get("pid", 0))):
        return None
    for path in held:
        path.unlink(missing_ok=True)
    marker.unlink(missing_ok=True)
    return f"removed the lock of a run that was killed (process {run['pid']} on this host); resuming"
