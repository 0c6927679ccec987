"""Sampling answers to eval questions from a base model or base + adapter.

One call loads the model once and samples every eval x condition x question x
sample, batched with left padding and stopping each sequence at EOS.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from inoculate.accelerated import vllm_sample
from inoculate.chat import prompt_ids
from inoculate.jobs import Progress
from inoculate.models import OutOfMemory, load_causal_lm, load_tokenizer, within_memory
from inoculate.sampling_plan import GenerationSettings, answer_fields, record_settings

log = logging.getLogger(__name__)


def load_model(
    base_model: str,
    adapter: Path | None = None,
    device: str = "cpu",
    dtype: str = "auto",
    quantization: str | None = None,
):
    """Base model (and LoRA adapter) plus its tokenizer, ready for left-padded batches.

    The adapter is merged into full-precision weights (no LoRA cost per token); on a
    4-bit base it stays separate, since merging into NF4 weights would round it away."""

    tokenizer = load_tokenizer(base_model)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = load_causal_lm(base_model, dtype, quantization, device)
    if adapter is not None:
        from peft import PeftModel  # noqa: PLC0415 - optional heavy library (the [models] extra)

        model = PeftModel.from_pretrained(model, str(adapter))
        if quantization is None:
            model = model.merge_and_unload()
    model.eval()
    return model, tokenizer


def stop_token_ids(model, tokenizer) -> list[int]:
    """EOS ids of the generation config and the tokenizer (chat models end turns with their own)."""
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


# Prompt widths are padded up to a multiple of this under a static cache, so that the
# compiled decoding step sees a handful of shapes instead of one per batch.
STATIC_WIDTH_MULTIPLE = 64


def resolve_cache(setting: str | None, device: torch.device) -> str | None:
    """`cache_implementation: auto`: a static (preallocated, compiled) KV cache on a GPU,
    where it removes per-token Python and allocation overhead; the dynamic one elsewhere."""
    if setting == "auto":
        return "static" if device.type == "cuda" else None
    return None if setting == "dynamic" else setting


def left_pad(prompts: list[list[int]], pad_id: int, multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask of a batch, padded on the left to a multiple of `multiple`."""
    width = -(-max(map(len, prompts)) // multiple) * multiple
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        if p:
            ids[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
    return ids, mask


def generate_ids(
    model,
    prompts: list[list[int]],
    settings: GenerationSettings,
    stops: list[int],
    pad_id: int,
    on_batch: Callable[[int], None] | None = None,
) -> list[list[int]]:
    """New token ids for each prompt, cut before its first stop token.

    Prompts run longest first in batches of `batch_size` (little padding inside a batch),
    left-padded; each sequence stops at its own EOS and a batch ends when all have. A batch
    that runs out of GPU memory is redone at half the size, which then holds for the rest.
    `on_batch(n)` is called with the number of prompts each finished batch answered."""
    device = next(model.parameters()).device
    cache = resolve_cache(settings.cache_implementation, device)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    out: list[list[int]] = [[] for _ in prompts]
    size, done = settings.batch_size, 0
    stop_set = set(stops)
    with tqdm(total=len(order), desc="generate", mininterval=5, disable=len(order) <= size) as progress:
        while done < len(order):
            idx = order[done : done + size]
            batch = [prompts[i] for i in idx]
            rows, oom = within_memory(device, _generate_batch, model, batch, settings, cache, stops, pad_id)
            if oom is not None:
                if size == 1:
                    raise OutOfMemory(
                        f"sampling ran out of GPU memory on a single prompt of {len(batch[0])} tokens with "
                        f"generation.max_new_tokens {settings.max_new_tokens}; lower generation.max_new_tokens, "
                        f"or set base_models.NAME.quantization: 4bit. ({oom})"
                    )
                size = max(1, size // 2)
                log.warning(
                    "a batch of %d prompts ran out of GPU memory; continuing with batches of %d",
                    len(idx),
                    size,
                )
                continue
            for row, i in zip(rows, idx):
                end = next((k for k, t in enumerate(row) if t in stop_set), len(row))
                out[i] = row[:end]
            done += len(idx)
            progress.update(len(idx))
            if on_batch is not None:
                on_batch(len(idx))
    return out


@torch.inference_mode()
def _generate_batch(
    model,
    prompts: list[list[int]],
    settings: GenerationSettings,
    cache: str | None,
    stops: list[int],
    pad_id: int,
) -> list[list[int]]:
    """New tokens of one left-padded batch (up to `max_new_tokens`, stop tokens included)."""
    device = next(model.parameters()).device
    ids, mask = left_pad(prompts, pad_id, STATIC_WIDTH_MULTIPLE if cache == "static" else 1)
    sampling = settings.temperature > 0
    generated = model.generate(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        do_sample=sampling,
        temperature=settings.temperature if sampling else None,
        top_p=settings.top_p if sampling else None,
        max_new_tokens=settings.max_new_tokens,
        eos_token_id=stops or None,
        pad_token_id=pad_id,
        **({"cache_implementation": cache} if cache else {}),
    )
    return generated[:, ids.shape[1] :].tolist()


def sample(
    model,
    tokenizer,
    records: list[dict],
    settings: GenerationSettings,
    seed: int,
    on_answers: Callable[[int], None] | None = None,
) -> list[dict]:
    """Fill in `answer` (and token counts) for every record; deterministic for a seed.
    `on_answers(n)` hears how many are answered after each batch (a model server's job)."""
    if settings.max_new_tokens is None:
        raise ValueError(
            "generation.max_new_tokens: null means the API's default length; a local model needs a number"
        )
    torch.manual_seed(seed)
    start = time.perf_counter()
    prompts = [prompt_ids(tokenizer, r["messages"]) for r in records]
    groups: dict[str, list[int]] = {}  # records that share sampling parameters go through one generate_ids
    for i, r in enumerate(records):
        groups.setdefault(json.dumps(r.get("sampling"), sort_keys=True), []).append(i)
    stops = stop_token_ids(model, tokenizer)
    new: list[list[int]] = [[] for _ in records]
    progress, answered = Progress("generation", len(records), "answers"), [0]

    def report(n: int) -> None:
        answered[0] += n
        progress.update(answered[0])
        if on_answers is not None:
            on_answers(answered[0])

    for indices in groups.values():
        group_settings = record_settings(settings, records[indices[0]])
        asked = [prompts[i] for i in indices]
        for i, ids in zip(
            indices, generate_ids(model, asked, group_settings, stops, tokenizer.pad_token_id, report)
        ):
            new[i] = ids
    seconds, n_new = time.perf_counter() - start, sum(map(len, new))
    log.info(
        "sampled %d answers, %d new tokens in %.1fs (%.0f tokens/s)",
        len(records),
        n_new,
        seconds,
        n_new / max(seconds, 1e-9),
    )
    return [
        {**r, **answer_fields(tokenizer.decode(ids, skip_special_tokens=True)), "answer_tokens": len(ids)}
        for r, ids in zip(records, new, strict=True)
    ]


def sample_cell(
    base_model: str,
    adapter: Path | None,
    records: list[dict],
    settings: GenerationSettings,
    seed: int,
    device: str = "cpu",
    dtype: str = "auto",
    quantization: str | None = None,
    max_lora_rank: int = 64,
) -> list[dict]:
    """Answers for every record from a base model (+ adapter), with the configured backend."""
    if settings.backend == "vllm":
        return vllm_sample(base_model, adapter, records, settings, seed, dtype, max_lora_rank, quantization)
    if settings.backend != "transformers":
        raise ValueError(f"generation.backend: {settings.backend!r} is not one of transformers, vllm")
    model, tokenizer = load_model(base_model, adapter, device, dtype, quantization)
    return sample(model, tokenizer, records, settings, seed)
