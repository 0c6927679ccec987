"""What every workflow script does first: log to the job's log file, bound threads.

Kept out of the scripts so they stay a few lines each; usable with any object
that has `log`, `threads` (Snakemake's `snakemake`, or a stand-in in tests).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from inoculate.resume import forget_job, record_job
from inoculate.secrets import RedactingStream, redact, redacting_handler

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


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
