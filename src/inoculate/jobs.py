"""What every workflow script does first: log to the job's log file, bound threads.

Kept out of the scripts so they stay a few lines each; usable with any object
that has `log`, `threads` (Snakemake's `snakemake`, or a stand-in in tests).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from inoculate.resume import forget_job, record_job
from inoculate.secrets import RedactingStream, redact, redacting_handler

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
_RUNNING: dict = {}  # the job this process runs (its name on the console) or works for


class Progress:
    """A line on the console every `every` share of a long job's work. A job's log file holds
    its steps; Snakemake shows only what a job writes to the console, so without these lines
    an 11-minute pretraining looks hung. Silent outside a workflow job (tests, the CLI)."""

    def __init__(self, what: str, total: int, unit: str, every: float = 0.1) -> None:
        self.what, self.total, self.unit, self.every = what, max(int(total), 0), unit, every
        self.start = time.perf_counter()
        self.next = every
        self.job = _RUNNING.get("label")

    def update(self, done: int, note: str = "") -> None:
        if not self.job or not self.total:
            return
        share = min(done / self.total, 1.0)
        if share + 1e-9 < self.next and done != self.total:
            return
        self.next = (math.floor(share / self.every + 1e-9) + 1) * self.every
        elapsed = time.perf_counter() - self.start
        left = f", about {elapsed / share - elapsed:.0f} s left" if 0 < share < 1 else ""
        line = f"[{self.job}] {self.what}: {share:.0%} ({done}/{self.total} {self.unit}, {elapsed:.0f} s{left}){note}"
        sink = _RUNNING.get("sink")
        if sink is not None:  # a warm process working for a job: the job prints it
            sink(redact(line))
        else:
            print(redact(line), file=sys.__stderr__, flush=True)


def current_job() -> str | None:
    """The name this process's job has on the console (None outside a workflow job)."""
    return _RUNNING.get("label")


@contextlib.contextmanager
def working_for(label: str, sink: Callable[[str], None]) -> Iterator[None]:
    """Progress lines of work done for a job in another process (a model server's) go to
    `sink`, named as the job's own would be."""
    _RUNNING.update(label=label, sink=sink)
    try:
        yield
    finally:
        _RUNNING.pop("label", None)
        _RUNNING.pop("sink", None)


class JobError(RuntimeError):
    """A job's error whose message held a secret: raised again with it redacted."""


@contextlib.contextmanager
def job(smk) -> Iterator[logging.Logger]:
    """Route logging and stderr (tqdm, warnings) to `smk.log[0]`; errors are logged, then raised.
    Every line passes through key redaction (inoculate.secrets)."""
    log_path = Path(smk.log[0]) if len(smk.log) else None
    stderr = sys.stderr
    handlers: list[logging.Handler] = [redacting_handler(sys.__stderr__, FORMAT)]
    stream = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        stream = log_path.open("w", buffering=1)
        handlers = [redacting_handler(stream, FORMAT)]
        sys.stderr = RedactingStream(stream)
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)
    # Under Snakemake: the job notes itself beside the run's lock while it runs (inoculate.resume).
    record = record_job(f"rule {smk.rule}, log {log_path}") if hasattr(smk, "rule") else None
    if hasattr(smk, "rule"):
        wildcards = getattr(smk, "wildcards", {}) or {}
        cell = "/".join(str(v) for k, v in dict(wildcards.items()).items() if k != "recipe")
        _RUNNING["label"] = f"{smk.rule} {cell}".strip()
    threads = int(getattr(smk, "threads", 1) or 1)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ["OMP_NUM_THREADS"] = str(threads)  # for a torch imported later in the job
    if "torch" in sys.modules:  # a model job: its script imported torch; a light job never pays for it
        sys.modules["torch"].set_num_threads(threads)
    logger = logging.getLogger("inoculate.job")
    try:
        yield logger
    except Exception as e:
        logger.exception("job failed")
        if redact(str(e)) != str(e):  # the console prints what is raised: never a key
            raise JobError(f"{type(e).__name__}: {redact(str(e))}") from None
        raise
    finally:
        _RUNNING.pop("label", None)
        if record is not None:
            forget_job(record)
        for handler in handlers:
            logging.getLogger().removeHandler(handler)
        if stream is not None:
            sys.stderr = stderr
            stream.close()


def resolve_device(device: str) -> str:
    """`auto` means CUDA when a GPU is visible, else CPU."""
    if device != "auto":
        return device
    import torch  # noqa: PLC0415 - optional heavy library (the [models] extra)

    return "cuda" if torch.cuda.is_available() else "cpu"


def share_source_path(src: Path) -> None:
    """Put the workflow's `src/` first on PYTHONPATH of every job Snakemake starts (local or on a
    cluster), so that a job imports this package without installing it (conda envs)."""
    current = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(src)]
    os.environ["PYTHONPATH"] = os.pathsep.join([str(src), *current])
