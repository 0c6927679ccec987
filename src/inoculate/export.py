"""Exports in the formats users hand to other tools."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from inoculate.io import atomic_path, read_jsonl


def model_generations_csv(generations: Path, out_path: Path, condition: str) -> int:
    """`id, question, response` for every answer under `condition` (the course-homework format).

    `id` is `eval:question_id:paraphrase:sample`, unique within the file.
    """
    rows = [
        {
            "id": f"{r['eval']}:{r['question_id']}:{r.get('paraphrase', 0)}:{r['sample']}",
            "question": r["question"],
            "response": r["answer"],
        }
        for r in read_jsonl(generations)
        if r.get("condition") == condition
    ]
    with atomic_path(out_path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "question", "response"])
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def training_details_md(adapter: Path, out_path: Path, cell: dict[str, str | int]) -> None:
    """`training_details.md` of an adapter (the course-homework deliverable), written from the
    recipe the adapter recorded (`meta.json`; for a cell fine-tuned through an API, its
    `fine_tune.json`), so that it states what was run, not what was meant."""
    if not (Path(adapter) / "meta.json").exists():
        _api_training_details(Path(adapter) / "fine_tune.json", out_path, cell)
        return
    meta = json.loads((Path(adapter) / "meta.json").read_text())
    settings = dict(meta.get("settings") or {})
    lora = settings.pop("lora", {}) or {}
    lines = [
        f"# Training details: {cell['model']} / {cell['setting']} / {cell['inoculation']} / seed {cell['seed']}",
        "",
        f"- Base model: `{meta.get('base_model')}`"
        + (f" ({meta['quantization']} quantized)" if meta.get("quantization") else ""),
        (
            f"- Training data: `{meta.get('data')}` ({meta.get('n_examples')} examples trained on, "
            f"{meta.get('n_held_out', 0)} held out; sha256 `{meta.get('data_sha256')}`)"
        ),
        f"- Seed: {meta.get('seed')}",
        "- LoRA: " + ", ".join(f"{k} {format_value(v)}" for k, v in lora.items()),
        f"- Trainable parameters: {meta.get('trainable_parameters')}",
        f"- Optimizer steps: {meta.get('steps')}; final training loss {format_value(meta.get('final_loss'))}"
        + (
            f", held-out loss {format_value(meta['final_eval_loss'])}"
            if meta.get("final_eval_loss") is not None
            else ""
        ),
        f"- Gradient checkpointing used: {meta.get('gradient_checkpointing_used')}",
        f"- Wall time: {format_value(meta.get('seconds'))} s (torch {meta.get('torch')})",
    ]
    _write_details(out_path, lines, "Hyperparameters", settings)


def _api_training_details(result_path: Path, out_path: Path, cell: dict) -> None:
    """The details of a fine-tuning job, as the API reported them."""
    result = json.loads(result_path.read_text())
    hyper = result.get("hyperparameters") or {}
    lines = [
        f"# Training details: {cell['model']} / {cell['setting']} / {cell['inoculation']} / seed {cell['seed']}",
        "",
        (
            f"- Fine-tuned through the API at `{result.get('endpoint') or 'api.openai.com'}`: "
            f"`{result.get('base_model')}` -> `{result.get('fine_tuned_model')}` (job {result.get('job_id')})"
        ),
        (
            f"- Training data: {result.get('examples')} examples (sha256 `{result.get('training_sha256')}`), "
            f"{result.get('trained_tokens')} tokens trained"
        ),
        f"- Seed: {result.get('seed')}",
    ]
    _write_details(out_path, lines, "Hyperparameters (as the API resolved them)", hyper)


def _write_details(out_path: Path, lines: list[str], title: str, values: dict) -> None:
    """The details' lines, then a table of `values` under `title`."""
    table = [
        "",
        f"## {title}",
        "",
        "| key | value |",
        "|---|---|",
        *(f"| {k} | {format_value(v)} |" for k, v in values.items()),
    ]
    with atomic_path(out_path) as tmp:
        tmp.write_text("\n".join([*lines, *table, ""]), encoding="utf-8")


def format_value(v) -> str:
    """A recipe value as the details and model cards print it."""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        return ", ".join(map(format_value, v))
    return "null" if v is None else str(v)
