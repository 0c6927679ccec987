"""Sampling through a model server: one process per base model on a machine loads it once and
answers the generation jobs of every cell that uses it (inoculate.model_server).

Each generation job stays one Snakemake job with its own output file, so per-cell reruns are
unchanged; what it no longer does is import torch, transformers and peft and load the base
model (about 5 s of a CPU's time per job, and a model load per cell on a GPU). The first job
that needs a server starts it; a server that sits idle exits. Where no server can be used (it
fails to start, dies mid-request), the job samples in its own process as before.

Light on purpose: this module imports nothing of the model stack.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

from inoculate.jobs import Progress

SOCKET_DIR = Path(".snakemake") / "inoculate-models"  # under the run's working folder
IDLE_SECONDS = 30.0  # a server with no request for this long exits
ENV_SWITCH = "INOCULATE_MODEL_SERVER"  # "0" turns the servers off (each job loads its model)


class ModelServerUnavailable(RuntimeError):
    """No server could answer: the job samples in its own process instead."""


def enabled(backend: str) -> bool:
    """Servers serve the transformers backend (vLLM keeps its own engine), unless switched off."""
    return backend == "transformers" and os.environ.get(ENV_SWITCH, "1") != "0"


def server_key(spec: dict) -> str:
    """One server per base model, device, dtype, quantization, thread count, interpreter and
    version of the sampling code (a server never answers with other code than the job's)."""
    code = Path(__file__).resolve().parent
    versions = {
        f: (code / f).stat().st_mtime_ns for f in ("generate.py", "model_server.py", "sampling_plan.py")
    }
    text = json.dumps({**spec, "python": sys.executable, "code": versions}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def sample_through_server(
    spec: dict, adapter: Path | None, records: list[dict], settings: dict, seed: int
) -> dict:
    """`{"records": answered records, "loads": base loads so far, "served": requests so far}` from
    the server of `spec` (base_model, device, dtype, quantization, threads), started if needed."""
    key = server_key(spec)
    SOCKET_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    address = SOCKET_DIR / f"{key}.sock"
    with (SOCKET_DIR / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one job at a time checks for the server and starts it
        connection = _connect(address) or _start(address, spec)
    request = {
        "adapter": str(adapter) if adapter else None,
        "records": records,
        "settings": settings,
        "seed": seed,
    }
    progress = Progress("generation", len(records), "answers")  # the server's progress, on this job's console
    try:
        with connection:
            connection.send(request)
            reply = connection.recv()
            while "answered" in reply:
                progress.update(reply["answered"])
                reply = connection.recv()
    except (EOFError, OSError) as e:
        raise ModelServerUnavailable(f"the model server {address} stopped answering ({e})") from None
    if "error" in reply:
        raise RuntimeError(f"model server {address}: {reply['error']}")
    return reply


def _connect(address: Path) -> Connection | None:
    if not address.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(address))
    except OSError:
        sock.close()
        address.unlink(missing_ok=True)  # a server that died left its socket
        return None
    return Connection(sock.detach())


def _start(address: Path, spec: dict) -> Connection:
    """Start a server in its own session (it outlives this job) and wait for it to listen."""
    log = address.with_suffix(".log")
    command = [
        sys.executable,
        "-m",
        "inoculate.model_server",
        str(address),
        json.dumps(spec),
        str(IDLE_SECONDS),
    ]
    with log.open("a") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
        )
    while process.poll() is None:
        connection = _connect(address)
        if connection is not None:
            return connection
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
    raise ModelServerUnavailable(
        f"the model server for {spec.get('base_model')} did not start ({tail.strip()})"
    )
