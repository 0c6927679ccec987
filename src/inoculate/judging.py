"""The judge stage: score a generations file with a judge backend."""

from __future__ import annotations

import logging
from pathlib import Path

from inoculate.evals import load_evals
from inoculate.io import read_jsonl, write_json, write_jsonl
from inoculate.judges import JudgeItem, make_judge

log = logging.getLogger(__name__)


def judge_file(
    generations: Path,
    out_path: Path,
    judge_config: dict,
    eval_specs: dict[str, dict] | None = None,
    usage_path: Path | None = None,
    spend_file: Path | None = None,
) -> int:
    """Write each generation record with `aligned`, `coherent`, `label` and the judge's name.

    Judge prompts that an eval file carries for a question (upstream `judge_prompts`)
    go to the judge with that question's answers.
    """
    judge = make_judge(judge_config, str(spend_file) if spend_file else None)
    prompts = {(q.eval, q.id): q.judge_prompts for q in load_evals(eval_specs or {})}
    records = read_jsonl(generations)
    items = [JudgeItem(r["question"], r["answer"], prompts.get((r.get("eval"), r.get("question_id")), {})) for r in records]
    judgments = judge.judge(items)
    out = []
    for r, j in zip(records, judgments, strict=True):
        r = {k: v for k, v in r.items() if k != "messages"}
        out.append({**r, "aligned": j.aligned, "coherent": j.coherent, "label": j.label, "judge": judge.name, "judge_detail": j.detail})
    labels: dict[str, int] = {}
    for r in out:
        labels[r["label"]] = labels.get(r["label"], 0) + 1
    log.info("judged %d answers with %s: %s", len(out), judge.name, labels)
    if usage_path is not None:
        write_json(usage_path, {"judge": judge.name, "answers": len(out), **judge.usage()})
    return write_jsonl(out_path, out)
