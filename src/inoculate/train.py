"""Fine-tuning: a LoRA adapter on chat data, loss on assistant tokens (or all tokens).

One loop serves the toy's pretraining (all weights) and adapter training (LoRA
through `peft`); it is deterministic for a given seed and data. Every knob of the
published recipes (rsLoRA, layer-restricted adapters, warmup and decay schedules,
8-bit AdamW, examples per device x accumulation, a held-out share for eval loss)
is a field of `TrainSettings`.
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

from inoculate.accelerated import unsloth_lora_model
from inoculate.chat import IGNORE_INDEX, Encoded, encode_conversation
from inoculate.checkpoints import Checkpointer, fingerprint, state_dir, validate
from inoculate.io import InputError, atomic_dir, iter_jsonl, readable_as_umask_allows, write_json
from inoculate.jobs import Progress
from inoculate.loss import model_loss_backward, supervised_loss_backward, supervised_loss_sum
from inoculate.models import OutOfMemory, load_causal_lm, load_tokenizer, unwrap, within_memory
from inoculate.schema import allowed_values, schema_defaults

log = logging.getLogger(__name__)


SCHEDULERS = allowed_values("training", "scheduler")
OPTIMIZERS = allowed_values("training", "optimizer")
LOSS_ON = allowed_values("training", "loss_on")


# Every default of a recipe is the schema's (config key `training`), read once here.
_DEFAULTS = schema_defaults("$defs", "training")


@dataclass
class LoraSettings:
    r: int = _DEFAULTS["lora"]["r"]
    alpha: int = _DEFAULTS["lora"]["alpha"]
    dropout: float = _DEFAULTS["lora"]["dropout"]
    target_modules: str | list[str] = _DEFAULTS["lora"]["target_modules"]
    use_rslora: bool = _DEFAULTS["lora"]["use_rslora"]  # scale alpha/sqrt(r) instead of alpha/r
    layers: list[int] | None = _DEFAULTS["lora"]["layers"]  # decoder layers to adapt (None: all)


@dataclass
class TrainSettings:
    """Hyperparameters of one training run (config key `training`; what each means and its
    default: src/inoculate/schemas/config.schema.yaml). A study chooses the first three."""

    learning_rate: float
    epochs: float
    batch_size: int
    max_length: int = _DEFAULTS["max_length"]
    weight_decay: float = _DEFAULTS["weight_decay"]
    warmup_steps: int = _DEFAULTS["warmup_steps"]
    warmup_ratio: float | None = _DEFAULTS["warmup_ratio"]  # a share of all steps (instead of warmup_steps)
    scheduler: str = _DEFAULTS["scheduler"]  # constant | linear | cosine (after warmup)
    optimizer: str = _DEFAULTS["optimizer"]  # adamw | adamw_8bit (bitsandbytes)
    loss_on: str = _DEFAULTS["loss_on"]  # assistant: answer tokens only; all: every token
    eval_fraction: float = _DEFAULTS["eval_fraction"]  # seeded held-out share; its loss is logged
    eval_steps: int | None = _DEFAULTS["eval_steps"]  # evaluate every n steps (None: at the last step)
    # An optimizer step takes batch_size x gradient_accumulation examples. Speed (GPU): with a
    # token budget, each step's examples are grouped by length and packed into micro-batches
    # under the budget (the step keeps its examples); activation checkpointing only when memory needs it.
    max_tokens_per_batch: int | None = _DEFAULTS["max_tokens_per_batch"]
    gradient_accumulation: int = _DEFAULTS["gradient_accumulation"]
    gradient_checkpointing: bool | str = _DEFAULTS["gradient_checkpointing"]  # "auto": from the first OOM
    bf16: bool | None = _DEFAULTS["bf16"]  # None: on CUDA when the GPU supports it
    backend: str = _DEFAULTS["backend"]  # or "unsloth" (GPU; installed separately)
    lora: LoraSettings = field(default_factory=LoraSettings)
    checkpoints: list | None = _DEFAULTS["checkpoints"]  # fractions (0.25) or steps (100), saved as adapters

    @classmethod
    def from_dict(cls, d: dict) -> TrainSettings:
        d = dict(d)
        lora = LoraSettings(**d.pop("lora", {}))
        return cls(lora=lora, **d)

    def __post_init__(self) -> None:
        for key, value, allowed in (
            ("scheduler", self.scheduler, SCHEDULERS),
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("loss_on", self.loss_on, LOSS_ON),
        ):
            if value not in allowed:
                raise ValueError(f"training.{key}: {value!r} is not one of {', '.join(allowed)}")
        if self.warmup_ratio is not None and self.warmup_steps:
            raise ValueError("training.warmup_steps and training.warmup_ratio: give one of them, not both")
        if not 0 <= self.eval_fraction < 1:
            raise ValueError(f"training.eval_fraction: {self.eval_fraction} is not in [0, 1)")

        validate(self.checkpoints)

    @property
    def examples_per_step(self) -> int:
        return self.batch_size * max(1, self.gradient_accumulation)

    def warmup(self, total_steps: int) -> int:
        """Warmup steps: `warmup_steps`, or `warmup_ratio` of all steps rounded up (as transformers does)."""
        if self.warmup_ratio is not None:
            return math.ceil(total_steps * self.warmup_ratio)
        return self.warmup_steps


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


def _pack(indices: list[int], lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Micro-batches of `indices` sorted by length, each (longest x count) under `budget` tokens."""
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in sorted(indices, key=lambda i: lengths[i]):
        if current and max(longest, lengths[i]) * (len(current) + 1) > budget:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, lengths[i])
    if current:
        batches.append(current)
    return batches


def plan_steps(lengths: Sequence[int], settings: TrainSettings, rng: random.Random) -> list[list[list[int]]]:
    """Example indices of each micro-batch of each optimizer step of one epoch.

    Every step takes `batch_size x gradient_accumulation` shuffled examples (the last one
    what is left), as the published recipes count them. Without a token budget a step is
    `gradient_accumulation` micro-batches of `batch_size`. With one, examples are sorted by
    length inside windows of 64 steps before being cut into steps (like transformers'
    `group_by_length`), step order is shuffled, and each step's examples are packed into
    micro-batches under the budget: less padding, the same examples per step.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    per_step = settings.examples_per_step
    budget = settings.max_tokens_per_batch
    if budget is None:
        steps = [order[i : i + per_step] for i in range(0, len(order), per_step)]
        return [
            [s[i : i + settings.batch_size] for i in range(0, len(s), settings.batch_size)] for s in steps
        ]
    window = 64 * per_step
    steps = []
    for w in range(0, len(order), window):
        ranked = sorted(order[w : w + window], key=lambda i: lengths[i])
        steps += [ranked[i : i + per_step] for i in range(0, len(ranked), per_step)]
    rng.shuffle(steps)
    return [_pack(s, lengths, budget) for s in steps]


def split_held_out(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, held-out) indices: a seeded `fraction` of `n` examples, rounded up, held out."""
    if fraction <= 0:
        return list(range(n)), []
    order = list(range(n))
    random.Random(f"held-out-{seed}").shuffle(order)
    k = min(n - 1, math.ceil(n * fraction))
    return sorted(order[k:]), sorted(order[:k])


def make_optimizer(params: list[torch.nn.Parameter], settings: TrainSettings, device: torch.device):
    """AdamW (fused: one kernel for all parameters, ~8x faster steps on a CPU too), or
    bitsandbytes' 8-bit AdamW (optimizer state in 8 bits, as Unsloth/TRL's `adamw_8bit`)."""
    if settings.optimizer == "adamw_8bit":
        try:
            import bitsandbytes as bnb  # noqa: PLC0415 - optional (the [quant] extra)
        except ImportError as e:
            raise ImportError(
                "training.optimizer: adamw_8bit needs bitsandbytes: pip install 'inoculate[quant]'"
            ) from e
        return bnb.optim.AdamW8bit(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    fused = device.type in ("cuda", "cpu")
    return torch.optim.AdamW(
        params, lr=settings.learning_rate, weight_decay=settings.weight_decay, fused=fused
    )


def make_scheduler(
    optimizer, settings: TrainSettings, total_steps: int, lr_lambda: Callable[[int, int], float] | None = None
):
    """transformers' schedules: warmup, then constant, linear decay to 0 or cosine decay to 0.
    `lr_lambda(step, total_steps)`: a multiplier of the learning rate instead (the toy's pretraining)."""
    from transformers import get_scheduler  # noqa: PLC0415 - optional heavy library (the [models] extra)

    if lr_lambda is not None:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_lambda(step, total_steps))
    name = settings.scheduler
    warmup = settings.warmup(total_steps)
    if name == "constant":
        name = "constant_with_warmup"
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


@torch.no_grad()
def held_out_loss(
    model: torch.nn.Module, examples: Sequence[Encoded], batch_size: int, pad_id: int, bf16: bool = False
) -> float:
    """Mean loss per supervised token over held-out examples."""

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    for s in range(0, len(order), batch_size):
        batch = collate([examples[i] for i in order[s : s + batch_size]], pad_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss_sum, n = supervised_loss_sum(model, batch)
        total, count = total + float(loss_sum), count + n
    if was_training:
        model.train()
    return total / max(count, 1)


def enable_checkpointing(model: torch.nn.Module) -> None:
    """Recompute activations in the backward pass instead of keeping them: less memory, ~30% more time."""
    base = unwrap(model)
    kwargs = {"use_reentrant": False}
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.18
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _accumulate_gradients(
    model: torch.nn.Module,
    group: list[dict[str, torch.Tensor]],
    n_tokens: int,
    device: torch.device,
    bf16: bool,
    fused: bool = False,
) -> float:
    """Gradients of the mean loss over all supervised tokens of a step's micro-batches;
    returns the summed loss. Gradients of an earlier, failed attempt must be cleared first.
    `fused`: through the model's own forward and loss (Unsloth's fused cross-entropy)."""
    backward = model_loss_backward if fused else supervised_loss_backward
    step_loss = torch.zeros((), device=device)
    for batch in group:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        loss_sum, _ = backward(model, batch, 1 / max(n_tokens, 1), bf16)
        step_loss += loss_sum
    return float(step_loss)  # one synchronisation per step


def _memory_advice(
    group: list[dict[str, torch.Tensor]], settings: TrainSettings, checkpointing: bool, error: str
) -> str:
    widest = max(group, key=lambda b: b["input_ids"].numel())["input_ids"].shape
    state = (
        "with gradient checkpointing on"
        if checkpointing
        else ("with training.gradient_checkpointing: false (set it to auto or true)")
    )
    return (
        f"training ran out of GPU memory on a micro-batch of {widest[0]} examples x {widest[1]} tokens {state}; "
        f"lower training.max_tokens_per_batch (now {settings.max_tokens_per_batch}) or training.batch_size "
        f"(now {settings.batch_size}) or training.max_length (now {settings.max_length}), or set "
        f"base_models.NAME.quantization: 4bit. ({error})"
    )


def _use_bf16(settings: TrainSettings, device: torch.device) -> bool:
    """`training.bf16`, or where unset: bf16 autocast on a GPU that supports it."""
    if settings.bf16 is not None:
        return settings.bf16
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def _step_within_memory(
    model: torch.nn.Module,
    optimizer,
    group: list[dict],
    n_tokens: int,
    settings: TrainSettings,
    checkpointing: bool,
    bf16: bool,
    step: int,
) -> tuple[float, bool]:
    """One step's gradients: (summed loss, whether gradient checkpointing is now on). Out of
    GPU memory, with `gradient_checkpointing: auto`, the step is retried with checkpointing;
    otherwise it stops with advice."""
    device = next(model.parameters()).device
    while True:
        fused = settings.backend == "unsloth"
        step_loss, oom = within_memory(
            device, _accumulate_gradients, model, group, n_tokens, device, bf16, fused
        )
        if oom is None:
            return step_loss, checkpointing
        optimizer.zero_grad(set_to_none=True)  # the failed attempt's partial gradients
        if settings.gradient_checkpointing != "auto" or checkpointing:
            raise OutOfMemory(_memory_advice(group, settings, checkpointing, oom)) from None
        log.warning("step %d ran out of GPU memory; retrying it with gradient checkpointing", step + 1)
        enable_checkpointing(model)
        checkpointing = True


def _eval_due(step: int, total: int, saves: dict, settings: TrainSettings) -> bool:
    """Held-out loss is logged every `eval_steps`, at each checkpoint and at the last step."""
    return step == total or step in saves or bool(settings.eval_steps and step % settings.eval_steps == 0)


def fit(
    model: torch.nn.Module,
    examples: Sequence[Encoded],
    settings: TrainSettings,
    seed: int,
    pad_id: int,
    on_step: Callable[[dict], None] | None = None,
    eval_examples: Sequence[Encoded] = (),
    lr_lambda: Callable[[int, int], float] | None = None,
    checkpointer=None,
    activity: str = "training",
) -> list[dict]:
    """Train `model` in place; returns the loss log, one row per optimizer step.

    The loss of a step is the mean over all supervised tokens of its micro-batches
    (gradient accumulation included), so long and short answers weigh per token. The
    learning rate logged is the one the step used. With `eval_examples`, their loss is
    logged (`eval_loss`) every `settings.eval_steps` steps, at each checkpoint and at the
    last step. A `checkpointer` (inoculate.checkpoints) saves the checkpoints' adapters and
    training state, and a rerun starts from the last one saved: the data order is replayed
    up to it, so the run ends exactly as an uninterrupted one.
    """
    set_seed(seed)
    order_rng = random.Random(seed)
    device = next(model.parameters()).device
    lengths = [len(e.input_ids) for e in examples]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, settings, device)
    steps_per_epoch = len(plan_steps(lengths, settings, random.Random(seed)))
    total = max(1, math.ceil(steps_per_epoch * settings.epochs))
    schedule = make_scheduler(optimizer, settings, total, lr_lambda)
    bf16 = _use_bf16(settings, device)
    checkpointing = settings.gradient_checkpointing is True
    if checkpointing:
        enable_checkpointing(model)
    saves = checkpointer.plan(total) if checkpointer is not None else {}
    done, history = checkpointer.restore(model, optimizer, schedule) if checkpointer is not None else (0, [])
    if history and history[-1]["gradient_checkpointing"] and not checkpointing:
        enable_checkpointing(model)
        checkpointing = True
    model.train()
    progress = Progress(activity, total, "steps")
    step, start = 0, time.perf_counter() - (history[-1]["seconds"] if history else 0.0)
    while step < total:
        for micro_batches in plan_steps(lengths, settings, order_rng):
            if step >= total:
                break
            if step < done:  # trained before a restart: the order is replayed, the step not redone
                step += 1
                continue
            group = [collate([examples[j] for j in b], pad_id) for b in micro_batches]
            n_tokens = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in group)
            step_loss, checkpointing = _step_within_memory(
                model, optimizer, group, n_tokens, settings, checkpointing, bf16, step
            )
            lr = schedule.get_last_lr()[0]
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            schedule.step()
            step += 1
            row = {
                "step": step,
                "epoch": step / steps_per_epoch,
                "loss": step_loss / max(n_tokens, 1),
                "lr": lr,
                "examples": sum(len(b) for b in micro_batches),
                "tokens": n_tokens,
                "padded_tokens": sum(int(b["input_ids"].numel()) for b in group),
                "gradient_checkpointing": int(checkpointing),
                "seconds": time.perf_counter() - start,
            }
            if eval_examples:
                due = _eval_due(step, total, saves, settings)
                row["eval_loss"] = (
                    held_out_loss(model, eval_examples, settings.batch_size, pad_id, bf16) if due else None
                )
            history.append(row)
            if step in saves:
                checkpointer.save(saves[step], step, model, optimizer, schedule, history, total)
            if on_step:
                on_step(row)
            progress.update(step, f", loss {row['loss']:.3f}")
    model.eval()
    return history


def load_training_examples(
    path: Path, tokenizer, max_length: int, loss_on: str = "assistant"
) -> list[Encoded]:
    """Encode every conversation of a JSONL file; errors name the file and line."""
    examples = []
    for lineno, record in iter_jsonl(path):
        try:
            examples.append(encode_conversation(tokenizer, record["messages"], max_length, loss_on=loss_on))
        except (KeyError, ValueError) as e:
            raise InputError(f"{path}:{lineno}: {e}") from None
    if not examples:
        raise InputError(f"{path}: no training examples")
    return examples


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _peft_model(model: torch.nn.Module, settings: TrainSettings, quantization: str | None):
    """The LoRA wrapper of `training.lora`; a quantized base is prepared for k-bit training first."""
    from peft import get_peft_model  # noqa: PLC0415 - optional heavy library (the [models] extra)

    if quantization is not None:
        from peft import prepare_model_for_kbit_training  # noqa: PLC0415 - optional heavy library (the [models] extra)

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=settings.gradient_checkpointing is True
        )
    return get_peft_model(model, lora_config(settings.lora, model))


def linear_module_names(model: torch.nn.Module) -> list[str]:
    """What `all-linear` means for a model, as peft reads it: the names of its linear layers
    (4-bit and 8-bit ones included), the output layer left out."""
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if module is not output
        and (isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt"))
    }
    return sorted(names)


def lora_config(lora: LoraSettings, model: torch.nn.Module | None = None):
    """peft's LoraConfig of `training.lora` (rsLoRA and layer restriction included). peft takes
    `layers` only with explicit module names: `all-linear` is then spelt out from the model."""
    from peft import LoraConfig  # noqa: PLC0415 - optional heavy library (the [models] extra)

    targets = lora.target_modules
    if lora.layers is not None and targets == "all-linear":
        if model is None:
            raise ValueError(
                "training.lora.layers with target_modules all-linear needs the model to name its layers"
            )
        targets = linear_module_names(model)
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        use_rslora=lora.use_rslora,
        layers_to_transform=lora.layers,
        task_type="CAUSAL_LM",
    )


def train_lora(
    base_model: str,
    data_path: Path,
    out_dir: Path,
    settings: TrainSettings,
    seed: int,
    device: str = "cpu",
    dtype: str = "auto",
    quantization: str | None = None,
    on_step: Callable[[dict], None] | None = None,
) -> dict:
    """Train a LoRA adapter on `data_path` and save it to `out_dir` with its loss log and metadata.

    With `quantization: 4bit` the frozen base is NF4 (QLoRA): a fraction of the memory,
    the adapter itself trained in full precision. With `settings.checkpoints`, the
    checkpoints' adapters go to `out_dir/checkpoints/`, and a rerun after a kill resumes from
    the last one (inoculate.checkpoints). `on_step(row)` is called after every step with its row
    of the loss log (step, loss, lr, tokens, and `eval_loss` where one was measured)."""

    start = time.perf_counter()
    tokenizer = load_tokenizer(base_model)
    encoded = load_training_examples(data_path, tokenizer, settings.max_length, settings.loss_on)
    train_idx, held_idx = split_held_out(len(encoded), settings.eval_fraction, seed)
    examples, held_out = [encoded[i] for i in train_idx], [encoded[i] for i in held_idx]
    set_seed(seed)
    model = _lora_model(base_model, settings, seed, device, dtype, quantization)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("training %d examples, %d trainable parameters, seed %d", len(examples), trainable, seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def report(row: dict) -> None:
        if row["step"] % 10 == 0:
            log.info("step %d loss %.4f", row["step"], row["loss"])
        if on_step is not None:
            on_step(row)

    data_sha256 = file_sha256(data_path)
    checkpointer = _checkpointer(out_dir, base_model, data_sha256, seed, quantization, settings)
    history = fit(
        model, examples, settings, seed, pad_id, report, eval_examples=held_out, checkpointer=checkpointer
    )
    final_eval = [r["eval_loss"] for r in history if r.get("eval_loss") is not None]
    meta = {
        "base_model": base_model,
        "quantization": quantization,
        "data": str(data_path),
        "data_sha256": data_sha256,
        "seed": seed,
        "settings": {k: v for k, v in asdict(settings).items() if k != "checkpoints" or v},
        "n_examples": len(examples),
        "n_held_out": len(held_out),
        "n_supervised_tokens": sum(e.n_supervised for e in examples),
        "trainable_parameters": trainable,
        "steps": len(history),
        "final_loss": history[-1]["loss"],
        "final_eval_loss": final_eval[-1] if final_eval else None,
        "gradient_checkpointing_used": bool(history[-1]["gradient_checkpointing"]),
        "seconds": time.perf_counter() - start,
        "torch": torch.__version__,
    }
    _save_adapter(out_dir, model, history, meta, checkpointer)
    return meta


def _lora_model(
    base_model: str, settings: TrainSettings, seed: int, device: str, dtype: str, quantization: str | None
) -> torch.nn.Module:
    """The base model with fresh LoRA layers, through the configured training backend."""
    if settings.backend == "unsloth":
        return unsloth_lora_model(base_model, settings, seed, dtype, quantization)
    if settings.backend != "transformers":
        raise ValueError(f"training.backend: {settings.backend!r} is not one of transformers, unsloth")
    return _peft_model(load_causal_lm(base_model, dtype, quantization, device), settings, quantization)


def _checkpointer(
    out_dir: Path,
    base_model: str,
    data_sha256: str,
    seed: int,
    quantization: str | None,
    settings: TrainSettings,
) -> Checkpointer | None:
    """Where `training.checkpoints` asks for them: the checkpoints' saver, keyed by everything
    that determines the run, so that a resume never continues another recipe's state."""
    if not settings.checkpoints:
        return None
    identity = fingerprint(
        base=base_model,
        data=data_sha256,
        seed=seed,
        quantization=quantization,
        settings={k: v for k, v in asdict(settings).items() if k != "checkpoints"},
    )
    return Checkpointer(state_dir(out_dir), settings.checkpoints, identity)


def _save_adapter(
    out_dir: Path, model: torch.nn.Module, history: list[dict], meta: dict, checkpointer: Checkpointer | None
) -> None:
    """The adapter folder, whole or not at all: weights, loss log, metadata, checkpoints."""
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        _write_loss_csv(tmp / "loss.csv", history)
        write_json(tmp / "meta.json", meta)
        if checkpointer is not None:
            checkpointer.export(tmp)
        readable_as_umask_allows(tmp)
    if checkpointer is not None:
        checkpointer.clear()


def _write_loss_csv(path: Path, history: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
