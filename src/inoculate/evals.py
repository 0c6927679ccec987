"""Eval question files in the upstream emergent-misalignment format.

A file is a YAML list of `{id, type, paraphrases, samples_per_paraphrase,
judge_prompts?, system?}`; it is read as published, with no conversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from inoculate.io import InputError, read_yaml


@dataclass(frozen=True)
class EvalQuestion:
    eval: str
    id: str
    paraphrases: tuple[str, ...]
    samples: int = 1
    system: str | None = None
    judge_prompts: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def load_eval_file(path: Path | str, eval_name: str) -> list[EvalQuestion]:
    """Questions of one eval file; errors name the file and the entry."""
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a list of questions, got {type(data).__name__}")
    out, seen = [], set()
    for i, entry in enumerate(data):
        where = f"{path}: entry {i}"
        if not isinstance(entry, dict):
            raise InputError(f"{where}: expected a mapping")
        qid = entry.get("id")
        if not qid:
            raise InputError(f"{where}: missing 'id'")
        if qid in seen:
            raise InputError(f"{where}: duplicate id {qid!r}")
        seen.add(qid)
        paraphrases = entry.get("paraphrases")
        if not isinstance(paraphrases, list) or not paraphrases or not all(isinstance(p, str) for p in paraphrases):
            raise InputError(f"{where} ({qid}): 'paraphrases' must be a non-empty list of strings")
        samples = entry.get("samples_per_paraphrase", 1)
        if not isinstance(samples, int) or samples < 1:
            raise InputError(f"{where} ({qid}): 'samples_per_paraphrase' must be a positive integer")
        known = {"id", "paraphrases", "samples_per_paraphrase", "system", "judge_prompts"}
        out.append(
            EvalQuestion(
                eval=eval_name,
                id=str(qid),
                paraphrases=tuple(paraphrases),
                samples=samples,
                system=entry.get("system"),
                judge_prompts=dict(entry.get("judge_prompts") or {}),
                extra={k: v for k, v in entry.items() if k not in known},
            )
        )
    if not out:
        raise InputError(f"{path}: no questions")
    return out
