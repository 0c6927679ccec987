"""Exports in the formats users hand to other tools."""

from __future__ import annotations

import csv
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
