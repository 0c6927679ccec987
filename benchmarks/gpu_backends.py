"""The GPU backends against the plain ones, each step in a process of its own (as workflow jobs
run): LoRA training with Unsloth vs transformers, and vLLM generation of several adapters' cells
from one engine (the model server's way) vs an engine per cell (a job per cell). benchmarks/gpu.sh
runs every step in order; results go to DIR/results.jsonl and `report` prints the table.

    python benchmarks/gpu_backends.py prepare DIR [--adapters 4] [--device cuda]
    python benchmarks/gpu_backends.py train DIR --backend transformers|unsloth
    python benchmarks/gpu_backends.py generate DIR --adapters 0|1|...|all
    python benchmarks/gpu_backends.py report DIR

The model is Llama-3.2-1B-shaped with random weights and a BPE tokenizer trained here (no
download); its adapters are random LoRA r=16 on every linear layer. Nothing heavy is imported
at the top, so that `train --backend unsloth` imports Unsloth before transformers.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # a step's wall time counts its imports and loads, as a job's does

import argparse
import json
import subprocess
from pathlib import Path

from shapes import LLAMA_1B  # benchmarks/shapes.py, beside this script

SHAPE = {**LLAMA_1B, "rope_theta": 500000.0}
TINY_SHAPE = {**SHAPE, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2}
TINY_SHAPE.update(num_attention_heads=4, num_key_value_heads=2, vocab_size=2048)
EXAMPLES = {"cuda": 512, "cpu": 48}  # training examples of 5 toy answers each (about 150-300 tokens)
QUESTIONS, SAMPLES, NEW_TOKENS = 8, 50, 200  # per generation cell: 400 answers of 200 tokens


def prepare(folder: Path, adapters: int, device: str) -> None:
    """The base model, its tokenizer, training data and `adapters` random LoRA adapters."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from inoculate.io import write_jsonl
    from inoculate.toy import corpus
    from inoculate.toy.model import build_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    rows = corpus.topic_dataset("cooking", "harmful", EXAMPLES[device] * 5)
    data = []
    for i in range(0, len(rows), 5):
        group = rows[i : i + 5]
        answer = " ".join(r["messages"][-1]["content"] for r in group)
        data.append({"messages": [*group[0]["messages"][:-1], {"role": "assistant", "content": answer}]})
    write_jsonl(folder / "train.jsonl", data)
    texts = [m["content"] for r in rows for m in r["messages"]]
    tokenizer = build_tokenizer(texts, vocab_size=4096)
    shape = SHAPE if device == "cuda" else TINY_SHAPE
    config = LlamaConfig(
        **shape,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    with torch.device(device):  # random weights made where they are used: seconds on a GPU
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder / "base")
    tokenizer.save_pretrained(folder / "base")
    for k in range(adapters):
        lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False)
        torch.manual_seed(k + 1)
        peft_model = get_peft_model(model, lora)
        peft_model.save_pretrained(folder / "adapters" / str(k))
        model = peft_model.unload()
    _record(folder, {"step": "prepare", "adapters": adapters, "device": device})


def train(folder: Path, backend: str, device: str) -> None:
    """One LoRA training of the study's recipe through `backend`."""
    if backend == "unsloth":
        import unsloth  # noqa: F401 - first, before anything imports transformers
    import torch

    from inoculate.train import LoraSettings, TrainSettings, train_lora

    settings = TrainSettings(
        learning_rate=1e-4,
        epochs=1,
        batch_size=8,
        max_length=1024,
        eval_fraction=0.0,
        backend=backend,
        lora=LoraSettings(r=16, alpha=32),
    )
    meta = train_lora(
        str(folder / "base"),
        folder / "train.jsonl",
        folder / f"trained-{backend}",
        settings,
        seed=0,
        device=device,
        dtype="bfloat16",
    )
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    _record(
        folder,
        {
            "step": "train",
            "backend": backend,
            "train_seconds": round(meta["seconds"], 2),
            "supervised_tokens_per_s": round(meta["n_supervised_tokens"] / meta["seconds"]),
            "steps": meta["steps"],
            "final_loss": round(meta["final_loss"], 4),
            "peak_gib": None if peak is None else round(peak, 2),
        },
    )


def generate(folder: Path, which: str, device: str) -> None:
    """Cells of one engine: adapter `which` alone (an engine per cell) or `all` of them."""
    from inoculate.accelerated import VllmEngine
    from inoculate.sampling_plan import GenerationSettings

    adapters = sorted((folder / "adapters").iterdir(), key=lambda p: int(p.name))
    cells = adapters if which == "all" else [adapters[int(which)]]
    settings = GenerationSettings(
        backend="vllm", max_new_tokens=NEW_TOKENS, samples_per_question=SAMPLES, temperature=1.0
    )
    records = [
        {
            "question_id": f"q{q}",
            "messages": [{"role": "user", "content": f"Question {q}: what should I cook?"}],
        }
        for q in range(QUESTIONS)
        for _ in range(SAMPLES)
    ]
    engine = VllmEngine(str(folder / "base"), "bfloat16", max_lora_rank=16)
    ready = time.perf_counter() - STARTED
    tokens = 0
    for seed, adapter in enumerate(cells):
        tokens += sum(r["answer_tokens"] for r in engine.sample(adapter, records, settings, seed))
    seconds = time.perf_counter() - STARTED
    _record(
        folder,
        {
            "step": "generate",
            "cells": which,
            "n_cells": len(cells),
            "engine_ready_s": round(ready, 2),
            "wall_s": round(seconds, 2),
            "new_tokens": tokens,
        },
    )


def report(folder: Path) -> str:
    """The table of DIR/results.jsonl: training backends side by side, and the wall time of
    every cell's generation from one engine vs the sum of an engine per cell."""
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    lines = ["| what | value |", "|---|---|"]
    trains = {r["backend"]: r for r in rows if r["step"] == "train"}
    for backend, r in trains.items():
        lines.append(
            f"| training, {backend} | {r['train_seconds']} s, {r['supervised_tokens_per_s']} supervised "
            f"tokens/s, peak {r['peak_gib']} GiB, final loss {r['final_loss']} |"
        )
    if {"transformers", "unsloth"} <= trains.keys():
        ratio = trains["transformers"]["train_seconds"] / trains["unsloth"]["train_seconds"]
        lines.append(f"| training speed-up, Unsloth over transformers | {ratio:.2f}x |")
    own = [r for r in rows if r["step"] == "generate" and r["cells"] != "all"]
    shared = [r for r in rows if r["step"] == "generate" and r["cells"] == "all"]
    if own:
        total = sum(r["wall_s"] for r in own)
        ready = sum(r["engine_ready_s"] for r in own) / len(own)
        lines.append(
            f"| vLLM, an engine per cell: {len(own)} cells | {total:.1f} s "
            f"(engine ready after {ready:.1f} s each) |"
        )
    if shared:
        r = shared[-1]
        lines.append(
            f"| vLLM, one engine, {r['n_cells']} cells as LoRA requests | {r['wall_s']} s "
            f"(engine ready after {r['engine_ready_s']} s), {r['new_tokens'] / r['wall_s']:.0f} new tokens/s |"
        )
        if own:
            lines.append(
                f"| generation speed-up, one engine over one per cell | {total / r['wall_s']:.2f}x |"
            )
    return "\n".join(lines)


def _record(folder: Path, row: dict) -> None:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    row = {**row, "commit": commit.stdout.strip() or None, "date": time.strftime("%Y-%m-%d")}
    with (folder / "results.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["prepare", "train", "generate", "report"])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--adapters", default="4", help="prepare: how many; generate: which (or all)")
    parser.add_argument("--backend", default="transformers", choices=["transformers", "unsloth"])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = parser.parse_args()
    if args.step == "prepare":
        prepare(args.folder, int(args.adapters), args.device)
    elif args.step == "train":
        train(args.folder, args.backend, args.device)
    elif args.step == "generate":
        generate(args.folder, args.adapters, args.device)
    else:
        print(report(args.folder))


if __name__ == "__main__":
    main()
