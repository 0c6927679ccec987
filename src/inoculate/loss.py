"""The training loss: cross-entropy on supervised (answer) tokens only.

Logits are computed only at supervised positions, and there a chunk at a time: for a
128k vocabulary a 16k-token batch would otherwise hold several GB of float32 logits
and as much again for their gradient. The backward pass goes through each chunk's
logits at once and then once through the transformer body, so nothing is recomputed.
"""

from __future__ import annotations

import contextlib

import torch

from inoculate.chat import IGNORE_INDEX
from inoculate.models import unwrap

# Supervised tokens whose logits exist at one time (4,096 x 128k vocabulary x 4 bytes = 2 GiB).
CHUNK_TOKENS = 4096


def _body_and_head(model: torch.nn.Module):
    """The transformer body and the output layer of a causal LM (inside a PEFT wrapper too)."""
    base = unwrap(model)
    return getattr(base, base.base_model_prefix), base.get_output_embeddings(), base.config


def _autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def _supervised_hidden(model: torch.nn.Module, batch: dict[str, torch.Tensor]):
    """Last hidden states at positions that predict a supervised token, and those tokens."""
    body, head, config = _body_and_head(model)
    hidden = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE_INDEX
    return hidden[:, :-1][keep], targets[keep], head, getattr(config, "final_logit_softcapping", None)


def _cross_entropy_sum(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, cap: float | None):
    logits = head(hidden).float()
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.nn.functional.cross_entropy(logits, targets, reduction="sum")


def supervised_loss_sum(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], chunk_tokens: int = CHUNK_TOKENS
) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the supervised tokens of a batch and their number (forward only)."""
    hidden, targets, head, cap = _supervised_hidden(model, batch)
    total = hidden.new_zeros((), dtype=torch.float32)
    for s in range(0, len(targets), chunk_tokens):
        total = total + _cross_entropy_sum(
            head, hidden[s : s + chunk_tokens], targets[s : s + chunk_tokens], cap
        )
    return total, len(targets)


def supervised_loss_backward(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    scale: float,
    bf16: bool = False,
    chunk_tokens: int = CHUNK_TOKENS,
) -> tuple[torch.Tensor, int]:
    """Accumulate the gradient of `scale` x the summed supervised cross-entropy of a batch;
    returns (summed loss, detached, on the batch's device; number of supervised tokens)."""
    device = batch["input_ids"].device
    with _autocast(device, bf16):
        hidden, targets, head, cap = _supervised_hidden(model, batch)
    return head_loss_backward(head, hidden, targets, scale, cap, bf16, chunk_tokens), len(targets)


def model_loss_backward(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], scale: float, bf16: bool = False
) -> tuple[torch.Tensor, int]:
    """As `supervised_loss_backward`, through the model's own forward with labels: Unsloth's
    patched forward and fused cross-entropy (`training.backend: unsloth`). Its loss is the mean
    over the batch's supervised tokens, so that mean times their number is the same summed loss,
    and a step's loss the same per-token mean over all its micro-batches."""
    n = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    device = batch["input_ids"].device
    if n == 0:
        return torch.zeros((), dtype=torch.float32, device=device), 0
    with _autocast(device, bf16):
        out = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
        )
    loss_sum = out.loss.float() * n
    (loss_sum * scale).backward()
    return loss_sum.detach(), n


def head_loss_backward(
    head: torch.nn.Module,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    scale: float,
    cap: float | None = None,
    bf16: bool = False,
    chunk_tokens: int = CHUNK_TOKENS,
) -> torch.Tensor:
    """Backward of `scale` x the summed cross-entropy of `head(hidden)` (n positions x width)
    against `targets`; returns the summed loss, detached.

    The output layer runs chunk by chunk on a detached copy of `hidden`, each chunk's
    gradient flowing back at once; the collected gradient of `hidden` then flows through
    whatever produced it in one backward pass."""
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    if len(targets) == 0:
        return total
    detached = hidden.detach().requires_grad_(True)
    for s in range(0, len(targets), chunk_tokens):
        with _autocast(hidden.device, bf16):
            loss = _cross_entropy_sum(
                head, detached[s : s + chunk_tokens], targets[s : s + chunk_tokens], cap
            )
        (loss * scale).backward()
        total += loss.detach()
    if hidden.requires_grad:
        hidden.backward(detached.grad)
    return total
