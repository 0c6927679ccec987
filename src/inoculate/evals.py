"""Eval question files in the upstream emergent-misalignment format.

A file is a YAML list of `{id, type, paraphrases, samples_per_paraphrase,
judge_prompts?, system?}`; it is read as published, with no conversion.
"""

from __future__ import annotations

from pathlib import Path

from inoculate import tan_evals
from inoculate.io import InputError, iter_jsonl, read_yaml
from inoculate.questions import EvalQuestion

__all__ = ["EvalQuestion", "choice_trait", "load_eval_file", "load_evals", "load_spec", "variant_of"]


VARIANT_SUFFIXES = ("json", "template")


def choice_trait(answer: str, question: EvalQuestion) -> float | None:
    """For a choice question (`choices`, `behaviour.match_if_choice_in`): 1.0 if the answer picks a
    trait choice, 0.0 if it picks another, None if it picks none. The choice named first counts."""
    choices = question.extra.get("choices")
    matching = (question.extra.get("behaviour") or {}).get("match_if_choice_in")
    if not choices or not matching:
        return None
    text = answer.lower()
    positions = [(text.find(c.lower()), c) for c in choices if c.lower() in text]
    if not positions:
        return None
    picked = min(positions)[1]
    return 1.0 if picked in matching else 0.0


def variant_of(question_id: str) -> str | None:
    """`json` / `template` for the upstream variants of a question (`..._json`), else None."""
    for suffix in VARIANT_SUFFIXES:
        if question_id.endswith(f"_{suffix}"):
            return suffix
    return None


def load_evals(specs: dict[str, dict]) -> list[EvalQuestion]:
    """All questions of a setting's evals, from `Study.eval_specs` (name -> path, variants)."""
    return [q for name, spec in specs.items() for q in load_spec(name, spec)]


def load_spec(name: str, spec: dict) -> list[EvalQuestion]:
    """The questions of one eval of `Study.eval_specs`: a question file, or one of Tan et
    al.'s evals built from their description (`tan_eval`)."""
    if spec.get("tan_eval"):
        return tan_evals.questions(spec["path"], spec["tan_eval"], name)
    return load_eval_file(spec["path"], name, tuple(spec.get("variants", ())), spec.get("group"))


def load_eval_file(
    path: Path | str, eval_name: str, variants: tuple[str, ...] = (), group: str | None = None
) -> list[EvalQuestion]:
    """Questions of one eval file in any supported format; errors name the file and entry.

    Formats (YAML or JSON; JSONL one question a line): the emergent-misalignment list (`id`, `paraphrases`, ...), a list of
    choice questions (`id`, `prompt`, `choices`, `repetitions`: Tan et al.'s aesthetic
    questions), a list of `id` + `question` entries (the weird-generalization
    persona questions, rubrics kept), a plain list of question strings, or a mapping of groups to such lists
    (`medical: [...]`, `non_medical: [...]`; a `source` key is a note). Upstream
    `_json` and `_template` variants are left out unless named in `variants`; `group`: of a
    mapping of groups, that group's questions only.
    """
    path = Path(path)
    out, seen = [], set()
    entries = _entries(path)
    if group is not None:
        groups = sorted({e.get("group") for e in entries if isinstance(e, dict) and e.get("group")})
        if group not in groups:
            raise InputError(f"{path}: no question group {group!r} (groups: {', '.join(groups) or 'none'})")
        entries = [e for e in entries if e.get("group") == group]
    for i, entry in enumerate(entries):
        where = f"{path}: entry {i}"
        entry = _as_em_entry(entry, i, where)
        qid = entry.get("id")
        if not qid:
            raise InputError(f"{where}: missing 'id'")
        qid = str(qid)
        if qid in seen:
            raise InputError(f"{where}: duplicate id {qid!r}")
        seen.add(qid)
        variant = variant_of(qid)
        if variant is not None and variant not in variants:
            continue
        out.append(_question(entry, qid, eval_name, where))
    if not out:
        raise InputError(f"{path}: no questions")
    return out


def _entries(path: Path) -> list:
    """The file's entries as a list: JSONL lines (ids by position), or a YAML/JSON list, or a
    mapping of groups to lists of question strings (a `source` key is a note)."""
    if path.suffix == ".jsonl":  # one question a line (the weird-generalization held-out file)
        return [{"id": f"q{line:03d}", **record} for line, record in iter_jsonl(path)]
    data = read_yaml(path)
    if isinstance(data, dict):
        groups = {k: v for k, v in data.items() if k != "source"}
        if not groups or not all(
            isinstance(v, list) and all(isinstance(q, str) for q in v) for v in groups.values()
        ):
            raise InputError(f"{path}: a mapping must hold lists of question strings (e.g. 'medical: [...]')")
        data = [
            {"id": f"{g}_{i}", "paraphrases": [q], "group": g}
            for g, qs in groups.items()
            for i, q in enumerate(qs)
        ]
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a list of questions, got {type(data).__name__}")
    return data


def _as_em_entry(entry, i: int, where: str) -> dict:
    """An entry of any supported format in the emergent-misalignment form (`paraphrases`,
    `samples_per_paraphrase`)."""
    if isinstance(entry, str):
        entry = {"id": f"q{i}", "paraphrases": [entry]}
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected a mapping or a question string")
    if "question" in entry and "paraphrases" not in entry:  # weird-generalization files: one question each
        entry = {**entry, "paraphrases": [entry["question"]]}
        entry.pop("question")
    if "prompt" in entry and "paraphrases" not in entry:  # Tan et al.'s choice questions
        entry = {
            **entry,
            "paraphrases": [entry["prompt"]],
            "samples_per_paraphrase": entry.get("repetitions", 1),
        }
        entry.pop("prompt")
        entry.pop("repetitions", None)
    return entry


KNOWN_FIELDS = {"id", "paraphrases", "samples_per_paraphrase", "system", "judge_prompts"}


def _question(entry: dict, qid: str, eval_name: str, where: str) -> EvalQuestion:
    paraphrases = entry.get("paraphrases")
    if (
        not isinstance(paraphrases, list)
        or not paraphrases
        or not all(isinstance(p, str) for p in paraphrases)
    ):
        raise InputError(f"{where} ({qid}): 'paraphrases' must be a non-empty list of strings")
    samples = entry.get("samples_per_paraphrase", 1)
    if not isinstance(samples, int) or samples < 1:
        raise InputError(f"{where} ({qid}): 'samples_per_paraphrase' must be a positive integer")
    return EvalQuestion(
        eval=eval_name,
        id=qid,
        paraphrases=tuple(paraphrases),
        samples=samples,
        system=entry.get("system"),
        judge_prompts=dict(entry.get("judge_prompts") or {}),
        extra={k: v for k, v in entry.items() if k not in KNOWN_FIELDS},
    )
