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
from inoculate.loss import supervised_loss_backward
from inoculate.models import OutOfMemory, unwrap, within_memory

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
    # Speed (GPU): batches grouped by length under a token budget instead of `batch_size`
    # examples; micro-batches per optimizer step; activation checkpointing only when memory needs it.
    max_tokens_per_batch: int | None = None
    gradient_accumulation: int = 1
    gradient_checkpointing: bool | str = "auto"  # "auto": from the first step that runs out of GPU memory
    bf16: bool | None = None  # None: on CUDA when the GPU supports it
    backend: str = "transformers"  # or "unsloth" (GPU; installed separately)
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


def plan_batches(lengths: Sequence[int], settings: TrainSettings, rng: random.Random) -> list[list[int]]:
    """Example indices of each micro-batch of one epoch.

    Without a token budget: shuffled batches of `batch_size`. With one: examples are
    shuffled, sorted by length inside windows of many batches, and packed greedily so
    that a padded batch (longest x count) stays under the budget; batch order is shuffled.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    budget = settings.max_tokens_per_batch
    if budget is None:
        return [order[i : i + settings.batch_size] for i in range(0, len(order), settings.batch_size)]
    batches: list[list[int]] = []
    window = 64 * settings.batch_size
    for w in range(0, len(order), window):
        current: list[int] = []
        longest = 0
        for i in sorted(order[w : w + window], key=lambda i: lengths[i]):
            if current and max(longest, lengths[i]) * (len(current) + 1) > budget:
                batches.append(current)
                current, longest = [], 0
            current.append(i)
            longest = max(longest, lengths[i])
        if current:
            batches.append(current)
    rng.shuffle(batches)
    return batches


def enable_checkpointing(model: torch.nn.Module) -> None:
    """Recompute activations in the backward pass instead of keeping them: less memory, ~30% more time."""
    base = unwrap(model)
    kwargs = {"use_reentrant": False}
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.18
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _accumulate_gradients(
    model: torch.nn.Module, group: list[dict[str, torch.Tensor]], n_tokens: int, device: torch.device, bf16: bool
) -> float:
    """Gradients of the mean loss over all supervised tokens of a step's micro-batches;
    returns the summed loss. Gradients of an earlier, failed attempt must be cleared first."""
    step_loss = torch.zeros((), device=device)
    for batch in group:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        loss_sum, _ = supervised_loss_backward(model, batch, 1 / max(n_tokens, 1), bf16)
        step_loss += loss_sum
    return float(step_loss)  # one synchronisation per step


def _memory_advice(group: list[dict[str, torch.Tensor]], settings: TrainSettings, checkpointing: bool, error: str) -> str:
    widest = max(group, key=lambda b: b["input_ids"].numel())["input_ids"].shape
    state = "with gradient checkpointing on" if checkpointing else (
        "with training.gradient_checkpointing: false (set it to auto or true)")
    return (
        f"training ran out of GPU memory on a micro-batch of {widest[0]} examples x {widest[1]} tokens {state}; "
        f"lower training.max_tokens_per_batch (now {settings.max_tokens_per_batch}) or training.batch_size "
        f"(now {settings.batch_size}) or training.max_length (now {settings.max_length}), or set "
        f"base_models.NAME.quantization: 4bit. ({error})"
    )


def fit(
    model: torch.nn.Module,
    examples: Sequence[Encoded],
    settings: TrainSettings,
    seed: int,
    pad_id: int,
    on_step: Callable[[int, float], None] | None = None,
) -> list[dict]:
    """Train `model` in place; returns the loss log, one row per optimizer step.

    The loss of a step is the mean over all supervised tokens of its micro-batches
    (gradient accumulation included), so long and short answers weigh per token.
    """
    set_seed(seed)
    order_rng = random.Random(seed)
    device = next(model.parameters()).device
    lengths = [len(e.input_ids) for e in examples]
    params = [p for p in model.parameters() if p.requires_grad]
    fused = device.type in ("cuda", "cpu")  # one kernel for all parameters: ~8x faster steps on a CPU too
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay, fused=fused)
    accumulation = max(1, settings.gradient_accumulation)
    steps_per_epoch = math.ceil(len(plan_batches(lengths, settings, random.Random(seed))) / accumulation)
    total = max(1, math.ceil(steps_per_epoch * settings.epochs))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / max(1, settings.warmup_steps)) * max(0.0, 1 - s / total),
    )
    bf16 = settings.bf16
    if bf16 is None:
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    checkpointing = settings.gradient_checkpointing is True
    if checkpointing:
        enable_checkpointing(model)
    model.train()
    history: list[dict] = []
    step, start = 0, time.perf_counter()
    while step < total:
        batches = plan_batches(lengths, settings, order_rng)
        for g in range(0, len(batches), accumulation):
            if step >= total:
                break
            group = [collate([examples[j] for j in b], pad_id) for b in batches[g : g + accumulation]]
            n_tokens = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in group)
            while True:
                step_loss, oom = within_memory(device, _accumulate_gradients, model, group, n_tokens, device, bf16)
                if oom is None:
                    break
                optimizer.zero_grad(set_to_none=True)  # the failed attempt's partial gradients
                if settings.gradient_checkpointing != "auto" or checkpointing:
                    raise OutOfMemory(_memory_advice(group, settings, checkpointing, oom)) from None
                log.warning("step %d ran out of GPU memory; retrying it with gradient checkpointing", step + 1)
                enable_checkpointing(model)
                checkpointing = True
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            schedule.step()
            step += 1
            row = {
                "step": step,
                "epoch": step / steps_per_epoch,
                "loss": step_loss / max(n_tokens, 1),
                "lr": schedule.get_last_lr()[0],
                "tokens": n_tokens,
                "padded_tokens": sum(int(b["input_ids"].numel()) for b in group),
                "gradient_checkpointing": int(checkpointing),
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


def _peft_model(model: torch.nn.Module, settings: TrainSettings, quantization: str | None):
    """The LoRA wrapper of `training.lora`; a quantized base is prepared for k-bit training first."""
    from peft import LoraConfig, get_peft_model

    if quantization is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=settings.gradient_checkpointing is True)
    lora = settings.lora
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=lora.target_modules, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def train_lora(
    base_model: str,
    data_path: Path,
    out_dir: Path,
    settings: TrainSettings,
    seed: int,
    device: str = "cpu",
    dtype: str = "auto",
    quantization: str | None = None,
) -> dict:
    """Train a LoRA adapter on `data_path` and save it to `out_dir` with its loss log and metadata.

    With `quantization: 4bit` the frozen base is NF4 (QLoRA): a fraction of the memory,
    the adapter itself trained in full precision."""
    from inoculate.models import load_causal_lm, load_tokenizer

    start = time.perf_counter()
    tokenizer = load_tokenizer(base_model)
    examples = load_training_examples(data_path, tokenizer, settings.max_length)
    set_seed(seed)
    if settings.backend == "unsloth":
        from inoculate.accelerated import unsloth_lora_model

        model = unsloth_lora_model(base_model, settings, seed, dtype, quantization)
    elif settings.backend != "transformers":
        raise ValueError(f"training.backend: {settings.backend!r} is not one of transformers, unsloth")
    else:
        model = _peft_model(load_causal_lm(base_model, dtype, quantization, device), settings, quantization)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("training %d examples, %d trainable parameters, seed %d", len(examples), trainable, seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def report(step: int, loss: float) -> None:
        if step % 10 == 0:
            log.info("step %d loss %.4f", step, loss)

    history = fit(model, examples, settings, seed, pad_id, report)
    meta = {
        "base_model": base_model,
        "quantization": quantization,
        "data": str(data_path),
        "data_sha256": file_sha256(data_path),
        "seed": seed,
        "settings": asdict(settings),
        "n_examples": len(examples),
        "n_supervised_tokens": sum(e.n_supervised for e in examples),
        "trainable_parameters": trainable,
        "steps": len(history),
        "final_loss": history[-1]["loss"],
        "gradient_checkpointing_used": bool(history[-1]["gradient_checkpointing"]),
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
