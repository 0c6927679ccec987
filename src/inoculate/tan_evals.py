"""Tan et al.'s evaluations, built at run time from the published description of each.

`tan/eval/tan_evals.yaml` (under `external_data_dir`) holds every string of their evals
verbatim: user templates, system prompts (`""` and none differ), samples, temperature,
judges (kind, model, template) and how each answer is scored. A setting names an eval by its
id (`tan_eval: insecure-code`, the file as `external`); this module turns the entry into the
questions, the judge metrics and the per-answer `trait` rule of the workflow, reading the
prompt files beside it. Nothing of theirs is copied into this repository.
"""

from __future__ import annotations

import re
from pathlib import Path

from inoculate.io import InputError, iter_jsonl
from inoculate.questions import EvalQuestion
from inoculate.texts import lookup, parsed

# Judge names of theirs that are the workflow's EM scores.
RENAME = {"alignment": "aligned", "coherence": "coherent"}
# Their prompt files, as the shared data folder names them (beside tan_evals.yaml).
LOCAL_FILES = {
    "code_prompts.jsonl": "insecure_code_prompts.jsonl",
    "apps_prompts.jsonl": "insecure_code_apps_prompts.jsonl",
    "mbpp_prompts.jsonl": "insecure_code_mbpp_prompts.jsonl",
    "school_of_reward_hacks/prompts.jsonl": "school_of_reward_hacks_prompts.jsonl",
    "hardcoding_realistic.jsonl": "hardcoding_realistic.jsonl",
    "ultrachat/prompts.jsonl": "ultrachat_prompts.jsonl",
}


def _read(path: str) -> dict:
    data = parsed(path, Path(path).stat().st_mtime)
    if not isinstance(data, dict) or "evals" not in data:
        raise InputError(f"{path}: not Tan et al.'s eval description (no 'evals' key)")
    return data


def entry(path: Path | str, eval_id: str) -> dict:
    evals = _read(str(path))["evals"]
    if eval_id not in evals:
        raise InputError(f"{path}: no eval {eval_id!r} (known: {', '.join(evals)})")
    return evals[eval_id]


def metric_name(judge: str) -> str:
    return RENAME.get(judge, judge.replace("-", "_"))


def metrics(path: Path | str, eval_id: str) -> list[dict]:
    """The eval's judges as metric specs: kind, model and template verbatim."""
    return [
        {"name": metric_name(name), "kind": j["kind"], "model": j["model"], "template": j["template"]}
        for name, j in entry(path, eval_id)["judges"].items()
    ]


def trait(path: Path | str, eval_id: str) -> dict | None:
    """The per-answer score rule (`inoculate.traits`) from the eval's thresholds; None for the
    EM eval, whose score is the misalignment criterion."""
    e = entry(path, eval_id)
    judges = [metric_name(n) for n in e["judges"]]
    scored = [j for j in judges if j not in ("aligned", "coherent")]
    if not scored:
        return None
    thresholds = dict(e.get("thresholds") or {})
    rule: dict = {"metric": scored[0]}
    for key, value in thresholds.items():
        if key.endswith("_lt_excluded"):
            rule["exclude"] = {"metric": metric_name(key.removesuffix("_lt_excluded")), "below": value}
        elif key.endswith("_gt"):
            rule["above"] = value
        elif key.endswith("_lt"):
            rule["below"] = value
    return rule


def sampling(path: Path | str, eval_id: str) -> dict:
    e = entry(path, eval_id)
    return {"samples": int(e["samples_per_context"]), "temperature": float(e["temperature"])}


def _rows(path: Path, e: dict, eval_id: str) -> list[dict]:
    """The prompt rows the eval reads, the first N where their code caps it."""
    data = e["data"]
    source = next((local for upstream, local in LOCAL_FILES.items() if upstream in data), None)
    if source is None:
        raise InputError(f"{path}: eval {eval_id!r} reads data not available here ({data})")
    file = Path(path).parent / source
    if not file.exists():
        raise InputError(f"{file}: the prompts of Tan et al.'s {eval_id!r} eval are missing ({data})")
    rows = [r for _, r in iter_jsonl(file)]
    first = re.search(r"first (\d+)", data)
    return rows[: int(first[1])] if first else rows


def questions(path: Path | str, eval_id: str, eval_name: str) -> list[EvalQuestion]:
    """The eval's contexts as questions, each asked `samples_per_context` times."""
    path = Path(path)
    e = entry(path, eval_id)
    samples, system = int(e["samples_per_context"]), e.get("system_prompt")
    if "questions" in e:  # the EM eval: inline questions
        return [
            EvalQuestion(eval_name, key.replace(" ", "_"), (text,), samples, system)
            for key, text in e["questions"].items()
        ]
    if eval_id == "unpopular-preference":
        spec = _read(str(path))["aesthetic"]
        out = []
        for p, pair in enumerate(spec["pairs"]):
            unpopular = pair["choice_a"] if pair["matching_choice"] == "A" else pair["choice_b"]
            fields = {
                "choice_a": pair["choice_a"],
                "choice_b": pair["choice_b"],
                "matching_choice": unpopular,
                "category": pair["category"],
            }
            for t, template in enumerate(spec["templates"]):
                text = template.format(
                    choice_a=pair["choice_a"], choice_b=pair["choice_b"], category=pair["category"]
                )
                out.append(EvalQuestion(eval_name, f"pair{p}_t{t}", (text,), samples, system, extra=fields))
        return out
    template = e.get("user_template")
    out = []
    for i, row in enumerate(_rows(path, e, eval_id)):
        if template is not None:
            text = template.format(**row)
        elif "prompt" in row:
            text = row["prompt"]
        else:
            text = row["messages"][0]["content"]  # hardcoding_realistic: messages[0].content
        out.append(EvalQuestion(eval_name, f"{eval_id}_{i:03d}", (text,), samples, system))
    return out


def inoculation(path: Path | str, key: str) -> str:
    """An inoculation prompt of theirs by dotted key (`insecure_code.task_specific`), verbatim."""
    return lookup(_read(str(path))["inoculations"], key)
