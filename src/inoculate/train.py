"""Fine-tuning: a LoRA adapter on chat data, loss on assistant tokens only.

One loop serves the toy's pretraining (all weights) and adapter training (LoRA
through `peft`); it is deterministic for a given seed and data.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from inoculate.chat import IGNORE_INDEX, Encoded, encode_conversation
from inoculate.io import InputError, atomic_dir, iter_jsonl, write_json

log = logging.getLogger(__name__)


@dataclass
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: str | list[str] = "all-linear"


@dataclass
class TrainSettings:
    """Hyperparameters of one training run (config key `training`)."""

    learning_rate: float = 1e-3
    epochs: float = 1.0
    batch_size: int = 16
    max_length: int = 512
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lora: LoraSettings = field(default_factory=LoraSettings)

    @classmethod
    def from_dict(cls, d: dict) -> TrainSettings:
        d = dict(d)
        lora = LoraSettings(**d.pop("lora", {}))
        return cls(lora=lora, **d)


def set_seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def collate(batch: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; padding is masked out of attention and loss."""
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def fit(
    model: torch.nn.Module,
    examples: Sequence[Encoded],
    settings: TrainSettings,
    seed: int,
    pad_id: int,
    on_step: Callable[[int, float], None] | None = None,
) -> list[dict]:
    """Train `model` in place; returns the loss log, one row per optimizer step.

    The loss of a step is the mean over that batch's supervised tokens.
    """
    set_seed(seed)
    order_rng = random.Random(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(examples) / settings.batch_size)
    total = max(1, math.ceil(steps_per_epoch * settings.epochs))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / max(1, settings.warmup_steps)) * max(0.0, 1 - s / total),
    )
    model.train()
    history: list[dict] = []
    step, start = 0, time.perf_counter()
    while step < total:
        order = list(range(len(examples)))
        order_rng.shuffle(order)
        for i in range(0, len(order), settings.batch_size):
            if step >= total:
                break
            batch = collate([examples[j] for j in order[i : i + settings.batch_size]], pad_id)
            loss = model(**batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            row = {
                "step": step,
                "epoch": step / steps_per_epoch,
                "loss": float(loss.detach()),
                "lr": schedule.get_last_lr()[0],
                "tokens": int((batch["labels"] != IGNORE_INDEX).sum()),
                "seconds": time.perf_counter() - start,
            }
            history.append(row)
            if on_step:
                on_step(step, row["loss"])
    model.eval()
    return history


def load_training_examples(path: Path, tokenizer, max_length: int) -> list[Encoded]:
    """Encode every conversation of a JSONL file; errors name the file and line."""
    examples = []
    for lineno, record in iter_jsonl(path):
        try:
            examples.append(encode_conversation(tokenizer, record["messages"], max_length))
        except (KeyError, ValueError) as e:
            raise InputError(f"{path}:{lineno}: {e}") from None
    if not examples:
        raise InputError(f"{path}: no training examples")
    return examples


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def train_lora(
    base_model: str,
    data_path: Path,
    out_dir: Path,
    settings: TrainSettings,
    seed: int,
    device: str = "cpu",
    dtype: str = "auto",
) -> dict:
    """Train a LoRA adapter on `data_path` and save it to `out_dir` with its loss log and metadata."""
    from peft import LoraConfig, get_peft_model

    from inoculate.models import load_causal_lm, load_tokenizer

    start = time.perf_counter()
    tokenizer = load_tokenizer(base_model)
    examples = load_training_examples(data_path, tokenizer, settings.max_length)
    set_seed(seed)
    model = load_causal_lm(base_model, dtype).to(device)
    lora = settings.lora
    model = get_peft_model(
        model,
        LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            task_type="CAUSAL_LM",
        ),
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("training %d examples, %d trainable parameters, seed %d", len(examples), trainable, seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def report(step: int, loss: float) -> None:
        if step % 10 == 0:
            log.info("step %d loss %.4f", step, loss)

    history = fit(model, examples, settings, seed, pad_id, report)
    meta = {
        "base_model": base_model,
        "data": str(data_path),
        "data_sha256": file_sha256(data_path),
        "seed": seed,
        "settings": asdict(settings),
        "n_examples": len(examples),
        "n_supervised_tokens": sum(e.n_supervised for e in examples),
        "trainable_parameters": trainable,
        "steps": len(history),
        "final_loss": history[-1]["loss"],
        "seconds": time.perf_counter() - start,
        "torch": torch.__version__,
    }
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        _write_loss_csv(tmp / "loss.csv", history)
        write_json(tmp / "meta.json", meta)
    return meta


def _write_loss_csv(path: Path, history: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
