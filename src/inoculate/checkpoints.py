"""Adapters saved during training (`training.checkpoints`), and resuming from the last one.

A checkpoint is a fraction of training written with a decimal point (`0.25`: a quarter of the
optimizer steps, rounded up) or a step number (`100`). Each is saved as a LoRA adapter beside
the final one (`{adapter}/checkpoints/{label}/`, with its step, epoch and losses in
`meta.json`) and is a grid coordinate of generation and judging (`p0.25`, `step100`); `1.0` is
the final adapter itself.

While training, each checkpoint is also written with the full training state (trainable
weights, optimizer, schedule, random state, loss log) to a folder beside the adapter's
(`.seed{n}.train_state/`, not a Snakemake output, so it survives a killed job). A rerun of the
same training (same base, data, recipe, seed: its fingerprint) starts from the last one instead
of step 0 and ends with the same adapter an uninterrupted run gives; the folder is removed once
the adapter is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from pathlib import Path

from inoculate.io import atomic_dir, readable_as_umask_allows, write_json

log = logging.getLogger(__name__)

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json", "meta.json")


def validate(values: list | None) -> list[float | int]:
    """`training.checkpoints` as given: fractions in (0, 1] (floats) or step numbers >= 1 (ints)."""
    out = []
    for v in values or []:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise TypeError(
                f"training.checkpoints: {v!r} is neither a fraction (0.25) nor a step number (100)"
            )
        if isinstance(v, float) and not 0 < v <= 1:
            raise ValueError(
                f"training.checkpoints: fraction {v} is not in (0, 1] (a step number has no decimal point)"
            )
        if isinstance(v, int) and v < 1:
            raise ValueError(f"training.checkpoints: step {v} is not a step (the first is 1)")
        out.append(v)
    return out


def label(value: float | int) -> str:  # noqa: PYI041 - an int is a step, a float a fraction
    """A checkpoint's name on disk and in the DAG: `p0.25` for a fraction, `step100` for a step."""
    return f"p{value:g}" if isinstance(value, float) else f"step{value}"


def is_final(value: float | int) -> bool:  # noqa: PYI041
    return isinstance(value, float) and value == 1.0


def sampled_labels(values: list | None) -> list[str]:
    """The checkpoints that are their own grid coordinate (all but the final adapter)."""
    return [label(v) for v in validate(values) if not is_final(v)]


def steps(values: list | None, total: int) -> dict[int, str]:
    """Optimizer step -> label of every checkpoint for a run of `total` steps."""
    out: dict[int, str] = {}
    for v in validate(values):
        if is_final(v):
            continue
        step = max(1, math.ceil(v * total - 1e-9)) if isinstance(v, float) else v
        if step > total:
            raise ValueError(f"training.checkpoints: step {v} is past the end of training ({total} steps)")
        out.setdefault(step, label(v))
    return out


def fingerprint(**identity) -> str:
    """What makes two training runs the same run (base, data, recipe without its checkpoints, seed)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Checkpointer:
    """Saves checkpoints with their training state, restores the last one, exports the adapters."""

    def __init__(self, state_dir: Path, values: list | None, identity: str) -> None:
        self.root = Path(state_dir)
        self.values = validate(values)
        self.identity = identity

    def plan(self, total: int) -> dict[int, str]:
        return steps(self.values, total)

    def _states(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.root.glob("*/meta.json") if self.root.exists() else []:
            try:
                meta = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if meta.get("fingerprint") == self.identity and (path.parent / "state.json").exists():
                found.append((int(meta["step"]), path.parent))
        return sorted(found)

    def save(self, name: str, step: int, model, optimizer, schedule, history: list[dict], total: int) -> None:
        """Adapter + full training state of step `step`, written whole or not at all."""
        import torch  # noqa: PLC0415 - optional heavy library (the [models] extra)

        row = history[-1]
        meta = {
            "label": name,
            "step": step,
            "total_steps": total,
            "progress": step / total,
            "epoch": row["epoch"],
            "loss": row["loss"],
            "eval_loss": _last_eval(history),
            "fingerprint": self.identity,
        }
        tensors = {  # loaded back with weights_only=True: tensors and plain containers only
            "trainable": {
                n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad
            },
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        state = {"step": step, "schedule": schedule.state_dict(), "history": history}  # the rest, as JSON
        self.root.mkdir(parents=True, exist_ok=True)
        with atomic_dir(self.root / name) as tmp:
            model.save_pretrained(tmp)
            torch.save(tensors, tmp / "trainer.pt")
            (tmp / "state.json").write_text(json.dumps(state), encoding="utf-8")
            write_json(tmp / "meta.json", meta)
            readable_as_umask_allows(tmp)
        log.info("checkpoint %s saved at step %d of %d", name, step, total)

    def restore(self, model, optimizer, schedule) -> tuple[int, list[dict]]:
        """(step, loss log) of the last saved state of this run, loaded into model, optimizer and
        schedule; (0, []) when there is none (torch is imported here, not when the DAG is planned)."""
        import torch  # noqa: PLC0415 - optional heavy library (the [models] extra)

        states = self._states()
        if not states:
            return 0, []
        step, path = states[-1]
        # weights_only: a file under results/ (shared with a group) must not be able to run code here
        state = torch.load(path / "trainer.pt", map_location="cpu", weights_only=True)
        state.update(json.loads((path / "state.json").read_text(encoding="utf-8")))
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in state["trainable"].items():
                params[name].copy_(value.to(params[name].device))
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        log.warning("resuming training from checkpoint %s (step %d) in %s", path.name, step, self.root)
        return step, state["history"]

    def export(self, adapter_dir: Path) -> None:
        """Each checkpoint's adapter and meta.json into `{adapter_dir}/checkpoints/{label}/`."""
        for _, path in self._states():
            dest = adapter_dir / "checkpoints" / path.name
            dest.mkdir(parents=True, exist_ok=True)
            for name in ADAPTER_FILES:
                if (path / name).exists():
                    shutil.copy2(path / name, dest / name)
            meta = json.loads((path / "meta.json").read_text())
            meta.pop("fingerprint", None)
            write_json(dest / "meta.json", meta)

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _last_eval(history: list[dict]) -> float | None:
    values = [r["eval_loss"] for r in history if r.get("eval_loss") is not None]
    return values[-1] if values else None


def state_dir(adapter_dir: Path) -> Path:
    """Where a run keeps its resumable state: beside the adapter folder, not inside it."""
    adapter_dir = Path(adapter_dir)
    return adapter_dir.parent / f".{adapter_dir.name}.train_state"


def tag_records(records: list[dict], checkpoint_dir: Path) -> list[dict]:
    """Each record with the checkpoint it was sampled from: label, step and share of training."""
    meta = json.loads((Path(checkpoint_dir) / "meta.json").read_text())
    tag = {"checkpoint": meta["label"], "step": meta["step"], "progress": meta["progress"]}
    return [{**r, **tag} for r in records]


def final_tag(adapter_dir: Path | None) -> dict:
    """The tag of a final adapter's answers (the base model's: step 0)."""
    if adapter_dir is None:
        return {"checkpoint": "base", "step": 0, "progress": 0.0}
    meta_path, api_path = Path(adapter_dir) / "meta.json", Path(adapter_dir) / "fine_tune.json"
    steps_done = None
    if meta_path.exists():
        steps_done = json.loads(meta_path.read_text()).get("steps")
    elif api_path.exists():
        steps_done = api_total_steps(json.loads(api_path.read_text()))
    return {"checkpoint": "final", "step": steps_done, "progress": 1.0}


def parse_label(name: str) -> float | int:
    """The checkpoint value of a label: `p0.25` -> 0.25, `step100` -> 100."""
    return float(name[1:]) if name.startswith("p") else int(name.removeprefix("step"))


def api_total_steps(trained: dict) -> int | None:
    """A fine-tuning job's last step: the largest of its checkpoints' and loss log's steps."""
    steps_seen = [c["step"] for c in trained.get("checkpoints") or []]
    return max(steps_seen) if steps_seen else None


def api_checkpoint(trained: dict, name: str) -> dict:
    """The model the fine-tuning API kept nearest to checkpoint `name` of a job (OpenAI keeps
    one per epoch for the last epochs): its model id, step and actual share of training."""
    kept = [c for c in trained.get("checkpoints") or [] if c.get("model")]
    if not kept:
        raise ValueError(
            f"job {trained.get('job_id')} of {trained.get('fine_tuned_model')}: the API kept no "
            f"intermediate checkpoints, so {name} cannot be sampled"
        )
    total = api_total_steps(trained) or 1
    value = parse_label(name)
    target = max(1, math.ceil(value * total - 1e-9)) if isinstance(value, float) else value
    chosen = min(kept, key=lambda c: (abs(c["step"] - target), c["step"]))
    if chosen["step"] != target:
        log.warning(
            "checkpoint %s (step %d of %d): the API kept steps %s; sampling step %d",
            name,
            target,
            total,
            [c["step"] for c in kept],
            chosen["step"],
        )
    return {
        "model": chosen["model"],
        "step": chosen["step"],
        "progress": chosen["step"] / total,
        "label": name,
    }
