"""Sampling through a model server: one process per base model on a machine loads it once and
answers the generation jobs of every cell that uses it (inoculate.model_server).

Each generation job stays one Snakemake job with its own output file, so per-cell reruns are
unchanged; what it no longer does is import torch, transformers and peft and load the base
model (about 5 s of a CPU's time per job, and a model load per cell on a GPU; with vLLM, an
engine and its CUDA graphs per cell). The first job that needs a server starts it; a server
that sits idle exits, and one that holds a GPU exits when another job of its machine needs the
GPU (`release_gpu`). Where no server can be used (it fails to start, dies mid-request), the job
samples in its own process as before.

Light on purpose: this module imports nothing of the model stack.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import os
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

from inoculate.jobs import Progress, resolve_device
from inoculate.resume import process_alive

SOCKET_DIR = Path(".snakemake") / "inoculate-models"  # under the run's working folder
IDLE_SECONDS = 30.0  # a server with no request for this long exits
ENV_SWITCH = "INOCULATE_MODEL_SERVER"  # "0" turns the servers off (each job loads its model)
SERVING = "INOCULATE_SERVING"  # set in a server's own process: the name of its socket
RELAYED = {"answered", "row", "line", "log"}  # what a server sends on the way: progress, steps, log records


class ModelServerUnavailable(RuntimeError):
    """No server could answer: the job samples in its own process instead."""


def enabled(backend: str, quantization: str | None = None) -> bool:
    """Servers serve vLLM (any base) and transformers (a full-precision base: an adapter is merged
    into a copy of it), unless switched off."""
    servable = backend == "vllm" or (backend == "transformers" and quantization is None)
    return servable and os.environ.get(ENV_SWITCH, "1") != "0"


def _place() -> dict:
    """Where a server may be shared: one machine, one scheduler allocation, one set of visible GPUs
    (the socket folder may sit on a filesystem that many nodes share)."""
    return {
        "host": socket.gethostname(),
        "allocation": os.environ.get("SLURM_JOB_ID"),
        "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def _host_prefix() -> str:
    return hashlib.sha256(json.dumps(_place(), sort_keys=True).encode()).hexdigest()[:8]


def server_key(spec: dict) -> str:
    """One server per place (machine, allocation, GPUs), model, backend, device, dtype,
    quantization, thread count, interpreter and version of the package's code (a server never
    answers with other code than the job's): `PLACE-SPEC`, short enough for a socket's path."""
    code = Path(__file__).resolve().parent
    versions = {str(f.relative_to(code)): f.stat().st_mtime_ns for f in sorted(code.rglob("*.py"))}
    text = json.dumps({**spec, "python": sys.executable, "code": versions}, sort_keys=True)
    return f"{_host_prefix()}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def holds_gpu(spec: dict) -> bool:
    """Whether the server of `spec` keeps its model on a GPU (`auto`: where this machine has an
    NVIDIA device, told without importing torch)."""
    device = str(spec.get("device", "cpu"))
    if spec.get("backend") == "vllm":
        return True
    if device == "auto":
        return any(Path("/dev").glob("nvidia[0-9]*"))
    return not device.startswith("cpu")


def release_gpu(keep: str | None = None) -> int:
    """Ask every server of this place that holds a GPU (but `keep`) to exit, and wait until they
    have: a training, distillation or judge job loads its own model on the GPU, and two vLLM
    engines do not fit on one. Returns how many exited."""
    released = 0
    for address in sorted(SOCKET_DIR.glob(f"{_host_prefix()}-*.sock")):
        if address.stem in (keep, os.environ.get(SERVING)):  # never a server asking itself
            continue
        connection = _connect(address)
        if connection is None:
            continue
        try:
            with connection:
                connection.send({"release": True})
                reply = connection.recv()
                if reply.get("released"):
                    released += 1
                    _wait_gone(reply.get("pid"))
        except (EOFError, OSError):
            continue
    return released


def claim_device(device: str) -> str:
    """The device a job loads its own model on (`auto` resolved), with this place's model
    servers that hold a GPU asked to give it back first when it is a GPU."""
    resolved = resolve_device(device)
    if not resolved.startswith("cpu") and SOCKET_DIR.is_dir():
        release_gpu()
    return resolved


def _wait_gone(pid: int | None, seconds: float = 60.0) -> None:
    """Until the server's process has exited (its GPU memory is free only then)."""
    deadline = time.monotonic() + seconds
    while pid is not None and process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def sample_through_server(
    spec: dict, adapter: Path | None, records: list[dict], settings: dict, seed: int
) -> dict:
    """`{"records": answered records, "loads": base loads so far, "served": requests so far}` from
    the server of `spec` (base_model, backend, device, dtype, quantization, threads, and for vLLM
    max_lora_rank), started if needed."""
    request = {
        "adapter": str(adapter) if adapter else None,
        "records": records,
        "settings": settings,
        "seed": seed,
    }
    progress = Progress("generation", len(records), "answers")  # the server's progress, on this job's console
    return _ask(spec, request, lambda message: progress.update(message["answered"]))


def judge_served(judge_config: dict) -> bool:
    """A local model judge (`judge.backend: hf`) is served, unless servers are switched off."""
    return judge_config.get("backend") == "hf" and os.environ.get(ENV_SWITCH, "1") != "0"


def judge_through_server(judge_config: dict, threads: int, **judge_file_args) -> dict:
    """`inoculate.judging.judge_file(**judge_file_args)` run by the server of the judge's model,
    which loads it once for every file it judges: `{"written": answers, "loads", "served"}`.
    Paths are made absolute: the server may have started in another job's folder."""
    spec = {
        "kind": "judge",
        "model": judge_config["model"],
        "device": judge_config.get("device", "auto"),
        "dtype": judge_config.get("dtype", "auto"),
        "threads": threads,
    }
    args = {k: str(Path(v).resolve()) if isinstance(v, Path) else v for k, v in judge_file_args.items()}
    return _ask(spec, {"judge_file": args, "judge": judge_config})


def training_served(device: str, backend: str, quantization: str | None) -> bool:
    """Training on the CPU (the toy, the tests) goes through a warm process: its imports (about
    5 s of a CPU's time) are paid once, not per adapter. On a GPU a job trains itself."""
    cpu = not holds_gpu({"device": device})
    plain = backend == "transformers" and quantization is None
    return cpu and plain and os.environ.get(ENV_SWITCH, "1") != "0"


def train_through_server(threads: int, args: dict, on_message) -> dict:
    """`inoculate.train.train_lora(**args)` (paths as strings, the job's label) run by a warm
    training process: the first idle one of a pool, one per job training at once (each job
    holds its slot's lock for its request), so that jobs still train side by side. Messages on
    the way (`row`, `line`, `log`) go to `on_message`; returns `{"meta": ..., ...}`."""
    SOCKET_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    spec = {"kind": "train", "device": "cpu", "threads": threads}
    for slot in itertools.count():
        lock = (SOCKET_DIR / f"{server_key(spec)}-slot{slot}.busy").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        try:
            return _ask({**spec, "slot": slot}, {"train": args}, on_message)
        finally:
            lock.close()
    raise AssertionError("unreachable")


def _ask(spec: dict, request: dict, on_progress=None) -> dict:
    """The reply of the server of `spec` to `request` (started if needed); progress messages
    on the way go to `on_progress`."""
    key = server_key(spec)
    SOCKET_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    address = SOCKET_DIR / f"{key}.sock"
    with (SOCKET_DIR / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one job at a time checks for the server and starts it
        connection = _connect(address)
        if connection is None:
            if holds_gpu(spec):
                release_gpu(keep=key)  # another model's server gives the GPU back first
            connection = _start(address, spec)
    try:
        with connection:
            connection.send(request)
            reply = connection.recv()
            while RELAYED & reply.keys():
                if on_progress is not None:
                    on_progress(reply)
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
