"""The plain recipes users copy, kept as references for tests and benchmarks.

Training: fixed batches padded to the longest example, the model's own loss over
full-vocabulary logits at every position. Generation: `generate` on batches in
input order. The project's trainer and generator must match their results and
beat their speed (benchmarks/speed.py).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import torch

from inoculate.chat import Encoded
from inoculate.train import TrainSettings, collate, set_seed


def plain_fit(
    model: torch.nn.Module, examples: Sequence[Encoded], settings: TrainSettings, seed: int, pad_id: int
) -> list[dict]:
    """The common recipe: shuffled fixed-size batches, `model(**batch).loss`, plain AdamW."""
    set_seed(seed)
    rng = random.Random(seed)
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(examples) / settings.batch_size)
    total = max(1, math.ceil(steps_per_epoch * settings.epochs))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / total))
    model.train()
    history, step = [], 0
    while step < total:
        order = list(range(len(examples)))
        rng.shuffle(order)
        for i in range(0, len(order), settings.batch_size):
            if step >= total:
                break
            batch = {
                k: v.to(device)
                for k, v in collate([examples[j] for j in order[i : i + settings.batch_size]], pad_id).items()
            }
            loss = model(**batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            history.append(
                {"step": step, "loss": float(loss.detach()), "padded_tokens": int(batch["input_ids"].numel())}
            )
    model.eval()
    return history
