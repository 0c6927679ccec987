"""Experiment tracking (config key `tracking`): each adapter's run in trackio or Weights & Biases
with its loss curve (training and held-out), its resolved recipe and, once its answers are
judged, the cell's metrics. Off by default and never required: neither library is imported
unless a study turns tracking on, and both write locally unless told otherwise (trackio keeps
its runs in a local database; W&B runs offline unless `mode: online` and a key are given).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("trackio", "wandb")
INSTALL = {"trackio": "pip install trackio", "wandb": "pip install wandb"}


class TrackingError(RuntimeError):
    """Tracking was asked for and cannot run (library missing, W&B online without a key)."""


@dataclass(frozen=True)
class TrackingSettings:
    """`tracking` of the config: backend (null: off), project, W&B mode, where runs are kept."""

    backend: str | None = None
    project: str = "inoculation"
    mode: str = "offline"
    dir: str | None = None

    @classmethod
    def from_config(cls, spec: dict | None) -> TrackingSettings:
        return cls(**(spec or {}))

    @property
    def on(self) -> bool:
        return self.backend is not None


def run_name(model: str, setting: str, inoculation: str, seed: int | str, recipe: str | None = None) -> str:
    """One run per cell: the grid coordinates and, where cells of other recipes share them, the
    recipe's digest (a run is found again by this name when its metrics are added)."""
    parts = [model, setting, inoculation, f"seed{seed}", *([recipe] if recipe else [])]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(map(str, parts)))


def step_metrics(row: dict) -> dict[str, float]:
    """What a training step reports: loss, learning rate, tokens and, where measured, the
    held-out loss (`inoculate.train.fit`'s row)."""
    metrics = {"train/loss": row["loss"], "train/lr": row["lr"], "train/tokens": row["tokens"]}
    if row.get("eval_loss") is not None:
        metrics["eval/loss"] = row["eval_loss"]
    return metrics


class Run:
    """A run of the configured backend: `log(metrics, step)`, then `finish()`."""

    def __init__(
        self, settings: TrackingSettings, name: str, config: dict | None, resume: bool = False
    ) -> None:
        self.backend = settings.backend
        with _to_log():
            if settings.backend == "trackio":
                self._run = _trackio_run(settings, name, config, resume)
            elif settings.backend == "wandb":
                self._run = _wandb_run(settings, name, config, resume)
            else:
                raise TrackingError(
                    f"tracking.backend: {settings.backend!r} is not one of {', '.join(BACKENDS)}"
                )

    def log(self, metrics: dict, step: int | None = None) -> None:
        self._run.log(metrics, step=step)

    def finish(self) -> None:
        with _to_log():
            self._run.finish()


def _to_log():
    """The libraries' banners (printed) go where the job's messages go, not to the console."""
    return redirect_stdout(sys.stderr)


def start_run(settings: TrackingSettings, name: str, config: dict | None, resume: bool = False) -> Run | None:
    """The cell's run (None when tracking is off); `resume` adds to the run of that name
    (`config` None: the run keeps the recipe it was started with)."""
    return Run(settings, name, config, resume) if settings.on else None


def _import(backend: str):
    try:
        if backend == "trackio":
            import trackio  # noqa: PLC0415 - optional (the [tracking] extra), only when tracking is on

            return trackio
        import wandb  # noqa: PLC0415 - optional, only when tracking is on

        return wandb
    except ImportError as e:
        raise TrackingError(
            f"tracking.backend: {backend} is set but {backend} is not installed ({e}); "
            f"`{INSTALL[backend]}`, or set tracking.backend: null"
        ) from e


def _trackio_run(settings: TrackingSettings, name: str, config: dict | None, resume: bool):
    if settings.dir:
        os.environ["TRACKIO_DIR"] = str(Path(settings.dir).resolve())  # read as trackio is imported
    trackio = _import("trackio")
    if resume and config is None:
        config = _trackio_config(settings.project, name)
    return trackio.init(
        project=settings.project, name=name, config=config, resume="allow" if resume else "never"
    )


def _trackio_config(project: str, name: str) -> dict | None:
    """The recipe a trackio run was started with: trackio records a run's config afresh when it
    is resumed, so it is handed back rather than lost."""
    try:
        from trackio.sqlite_storage import SQLiteStorage  # noqa: PLC0415 - optional, as above

        config = SQLiteStorage.get_run_config(project, name) or {}
    except Exception:  # noqa: BLE001 - an older or newer trackio: the metrics still go in
        return None
    return {k: v for k, v in config.items() if not k.startswith("_")} or None


def _wandb_run(settings: TrackingSettings, name: str, config: dict | None, resume: bool):
    if settings.mode == "online" and not os.environ.get("WANDB_API_KEY"):
        raise TrackingError(
            "tracking.mode: online needs WANDB_API_KEY in the environment (or `wandb login`); "
            "offline runs need no key and sync later with `wandb sync`"
        )
    wandb = _import("wandb")
    directory = Path(settings.dir).resolve() if settings.dir else None
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    if resume and settings.mode == "offline":  # W&B cannot resume an offline run: a run beside it
        ids = {"id": _wandb_id(f"{name}-metrics"), "group": name, "job_type": "metrics"}
    else:
        ids = {"id": _wandb_id(name), "group": name, "resume": "allow" if resume else None}
    return wandb.init(
        project=settings.project,
        name=_wandb_id(name),
        config=config,
        mode=settings.mode,
        dir=str(directory) if directory else None,
        **ids,
    )


@contextmanager
def training_run(
    settings: TrackingSettings, name: str, recipe: dict
) -> Iterator[Callable[[dict], None] | None]:
    """The step callback of `inoculate.train.train_lora` that logs each step to the cell's run
    (None when tracking is off); the run is finished however training ends."""
    run = start_run(settings, name, recipe)
    if run is None:
        yield None
        return
    try:
        yield lambda row: run.log(step_metrics(row), step=row["step"])
    finally:
        run.finish()


def log_cell_metrics(settings: TrackingSettings, name: str, metrics: dict[str, float]) -> None:
    """The cell's judged metrics added to its training run (W&B offline: a run beside it)."""
    run = start_run(settings, name, None, resume=True)
    if run is not None:
        run.log(metrics)
        run.finish()


def _wandb_id(name: str) -> str:
    """A W&B run name or id: W&B refuses run names over 128 characters, so a longer one keeps its
    start and a digest of the whole (ids are checked for characters only: ours have none of
    `/\\#?%:`)."""
    if len(name) <= 128:
        return name
    return f"{name[:117]}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"
