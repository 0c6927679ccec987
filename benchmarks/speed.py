"""Training and generation speed: the plain recipe vs the project's trainer and generator, in one run.

    python benchmarks/speed.py --device cuda      # Llama-3.2-1B shapes, random weights, bf16
    python benchmarks/speed.py --device cpu       # the toy model's shapes, small sizes

Training data are EM-like chat examples of 100-700 tokens (30% prompt); LoRA r=16 on all
linear layers. Plain training: batches of 4 padded to the longest, the model's own loss
(gradient checkpointing on GPU, as the copied recipe has it). Project: `inoculate.train.fit`
with length-grouped batches under a token budget, logits only on answer tokens a chunk at a
time, checkpointing only if a step runs out of memory, fused AdamW on GPU.
Generation: `generate` with the default (dynamic) cache vs `inoculate.generate.generate_ids`,
the core of every sampling job (longest prompts first; on GPU a static cache and compiled
decoding), new tokens/s at two batch sizes. Prints and writes JSON with the commit and date.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import time
from pathlib import Path

import torch
from shapes import LLAMA_1B, TOY  # benchmarks/shapes.py, beside this script
from transformers import LlamaConfig, LlamaForCausalLM

from inoculate.baselines import plain_fit
from inoculate.chat import IGNORE_INDEX, Encoded
from inoculate.generate import GenerationSettings, generate_ids, left_pad, resolve_cache
from inoculate.train import TrainSettings, enable_checkpointing, fit

SHAPES = {"cuda": LLAMA_1B, "cpu": TOY}
SIZES = {  # examples, token budget, generation batches, new tokens
    "cuda": {"examples": 512, "budget": 16384, "gen_batches": (64, 256), "new_tokens": 200},
    "cpu": {"examples": 96, "budget": 2048, "gen_batches": (16, 64), "new_tokens": 64},
}


def make_model(device: str):
    """Random weights, built on the device in its dtype (bf16 on GPU): no 5 GB float32 detour."""
    torch.manual_seed(0)
    config = LlamaConfig(**SHAPES[device], bos_token_id=1, eos_token_id=None, pad_token_id=0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16 if device == "cuda" else torch.float32)
    try:
        with torch.device(device):
            return LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)


def with_lora(model):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(
        model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    )


def em_like_examples(n: int, vocab: int, rng: random.Random) -> list[Encoded]:
    out = []
    for _ in range(n):
        length = rng.randint(100, 700)
        ids = [rng.randrange(3, vocab) for _ in range(length)]
        prompt = int(0.3 * length)
        out.append(Encoded(ids, [IGNORE_INDEX] * prompt + ids[prompt:]))
    return out


def timed_training(device: str, trainer, examples, settings) -> dict:
    model = with_lora(make_model(device))
    _synchronize(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    history = trainer(model, examples, settings)
    _synchronize(device)
    seconds = time.perf_counter() - start
    tokens = sum(len(e.input_ids) for e in examples) * settings.epochs
    return {
        "tokens_per_s": tokens / seconds,
        "seconds": seconds,
        "steps": len(history),
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
        "final_loss": history[-1]["loss"],
        "padding_share": 1 - tokens / sum(r["padded_tokens"] for r in history),
    }


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed_generation(device: str, batch: int, new_tokens: int, project: bool) -> dict:
    """New tokens/s of one batch of `batch` prompts (20-120 tokens), `new_tokens` each
    (the model has no EOS, so every sequence runs to the end). Each path runs once untimed
    first: CUDA start-up for both, and compilation for the project's static cache."""
    model = make_model(device).eval()
    rng = random.Random(1)
    prompts = [
        [rng.randrange(3, model.config.vocab_size) for _ in range(rng.randint(20, 120))] for _ in range(batch)
    ]
    settings = GenerationSettings(max_new_tokens=new_tokens, batch_size=batch)  # cache_implementation: auto

    def plain() -> int:
        ids, mask = left_pad(prompts, pad_id=0)
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                do_sample=True,
                temperature=1.0,
                max_new_tokens=new_tokens,
                pad_token_id=0,
            )
        return (out.shape[1] - ids.shape[1]) * batch

    def ours() -> int:
        return sum(map(len, generate_ids(model, prompts, settings, stops=[], pad_id=0)))

    run = ours if project else plain
    torch.manual_seed(0)
    run()
    _synchronize(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    new = run()
    _synchronize(device)
    seconds = time.perf_counter() - start
    return {
        "new_tokens_per_s": new / seconds,
        "new_tokens": new,
        "seconds": seconds,
        "batch": batch,
        "cache": (resolve_cache(settings.cache_implementation, torch.device(device)) or "dynamic")
        if project
        else "dynamic",
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
    }


def _commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--out", default="results/benchmarks/speed.json")
    args = parser.parse_args()
    device, sizes = args.device, SIZES[args.device]
    examples = em_like_examples(sizes["examples"], SHAPES[device]["vocab_size"], random.Random(0))

    plain_settings = TrainSettings(
        learning_rate=1e-4, epochs=1, batch_size=4, gradient_checkpointing=device == "cuda"
    )

    def plain(model, ex, s):
        if s.gradient_checkpointing:
            enable_checkpointing(model)
        return plain_fit(model, ex, s, seed=0, pad_id=0)

    fast_settings = TrainSettings(
        learning_rate=1e-4, epochs=1, batch_size=16, max_tokens_per_batch=sizes["budget"]
    )
    results = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "date": time.strftime("%Y-%m-%d"),
        "commit": _commit(),
        "torch": torch.__version__,
        "train_plain": timed_training(device, plain, examples, plain_settings),
        "train_project": timed_training(
            device, lambda m, ex, s: fit(m, ex, s, seed=0, pad_id=0), examples, fast_settings
        ),
    }
    for batch in sizes["gen_batches"]:
        results[f"generate_plain_b{batch}"] = timed_generation(
            device, batch, sizes["new_tokens"], project=False
        )
        results[f"generate_project_b{batch}"] = timed_generation(
            device, batch, sizes["new_tokens"], project=True
        )
    results["ratios"] = {
        "train": results["train_project"]["tokens_per_s"] / results["train_plain"]["tokens_per_s"],
        **{
            f"generate_b{b}": results[f"generate_project_b{b}"]["new_tokens_per_s"]
            / results[f"generate_plain_b{b}"]["new_tokens_per_s"]
            for b in sizes["gen_batches"]
        },
    }
    print(json.dumps(results, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
