"""Inspect AI eval logs of judged cells, where researchers already read evaluations: `inspect view`
opens them, `inspect_ai.analysis.samples_df` loads them. One log per cell (and checkpoint): each
judged answer is a sample (its question as input, the answer as output, every judge score under
its metric name, the condition and grid coordinates as metadata; the samples of one question are
its epochs), the study's resolved config is in the eval spec, and each metric's mean is a result.

Needs the optional `inspect-ai` package (`pip install 'inoculate[inspect]'`); nothing else of the
package imports this module.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path

try:
    from inspect_ai.log import (
        EvalConfig,
        EvalDataset,
        EvalLog,
        EvalMetric,
        EvalResults,
        EvalSample,
        EvalScore,
        EvalSpec,
        EvalStats,
        write_eval_log,
    )
    from inspect_ai.model import ChatMessageAssistant, ChatMessageUser, ModelOutput
    from inspect_ai.scorer import Score
except ImportError as e:  # the optional extra: say how to get it
    raise ImportError(f"Inspect AI logs need inspect-ai ({e}): pip install 'inoculate[inspect]'") from e

from inoculate.coords import COORDS
from inoculate.io import InputError, atomic_path, read_jsonl

# Fields of a judged record that are not judge scores: its coordinates and what was asked and answered.
NOT_SCORES = {
    *COORDS,
    "checkpoint",
    "step",
    "progress",
    "question",
    "answer",
    "answer_tokens",
    "answer_whitespace",
    "judge",
    "judge_detail",
    "messages",
    "sampling",
    "system_prompt",
    "user_prefix",
}
COORDINATES = ("model", "setting", "inoculation", "seed", "checkpoint", "step", "progress")


def score_fields(records: list[dict]) -> list[str]:
    """The judge's metrics in these records: the label and every field whose values are numbers
    (or missing), in the order the records have them."""
    fields: dict[str, None] = {}
    for r in records:
        for key, value in r.items():
            if key in NOT_SCORES:
                continue
            numeric = value is None or (isinstance(value, int | float) and not isinstance(value, bool))
            if key == "label" or numeric or isinstance(value, bool):
                fields.setdefault(key)
    return [k for k in fields if k == "label" or all(_numeric(r.get(k)) for r in records)]


def _numeric(value) -> bool:
    return value is None or isinstance(value, int | float)


def cell_log(records: list[dict], study: str, config: dict, source: Path) -> EvalLog:
    """The eval log of one cell's judged `records` (from `source`)."""
    if not records:
        raise InputError(f"{source}: no judged answers")
    first = records[0]
    cell = {k: first[k] for k in COORDINATES if first.get(k) is not None}
    metrics = score_fields(records)
    samples, seen = [], set()
    for line, r in enumerate(records, 1):
        sample_id = f"{r.get('eval')}/{r.get('question_id')}/{r.get('paraphrase', 0)}/{r.get('condition')}"
        epoch = int(r.get("sample", 0)) + 1
        if (sample_id, epoch) in seen:
            raise InputError(f"{source}:{line}: a second answer for {sample_id}, sample {epoch - 1}")
        seen.add((sample_id, epoch))
        samples.append(_sample(r, sample_id, epoch, metrics, cell))
    created = datetime.fromtimestamp(Path(source).stat().st_mtime, UTC).isoformat()
    ident = hashlib.sha256(json.dumps([study, cell], sort_keys=True).encode()).hexdigest()[:22]
    spec = EvalSpec(
        eval_id=ident,
        run_id=ident,
        task_id=ident,
        created=created,
        task=f"inoculate/{cell.get('setting')}",
        task_args={k: v for k, v in cell.items() if k != "model"},
        tags=[study, str(cell.get("setting")), str(cell.get("inoculation"))],
        dataset=EvalDataset(name=str(cell.get("setting")), samples=len({s.id for s in samples})),
        model=f"inoculate/{cell.get('model')}",
        model_args={k: v for k, v in cell.items() if k != "model"},
        config=EvalConfig(epochs=max(s.epoch for s in samples)),
        metadata={"study": study, "cell": cell, "judged": str(source), "config": config},
    )
    return EvalLog(
        status="success",
        eval=spec,
        results=EvalResults(
            total_samples=len(samples), completed_samples=len(samples), scores=_results(records, metrics)
        ),
        stats=EvalStats(started_at=created, completed_at=created),
        samples=samples,
    )


def _sample(r: dict, sample_id: str, epoch: int, metrics: list[str], cell: dict) -> EvalSample:
    scores = {m: Score(value=r[m]) for m in metrics if r.get(m) is not None}
    metadata = {
        **cell,
        **{k: r.get(k) for k in ("eval", "distribution", "condition", "question_id", "paraphrase", "sample")},
        "judge": r.get("judge"),
        "answer_tokens": r.get("answer_tokens"),
    }
    return EvalSample(
        id=sample_id,
        epoch=epoch,
        input=str(r.get("question", "")),
        target="",
        messages=[
            ChatMessageUser(content=str(r.get("question", ""))),
            ChatMessageAssistant(content=r["answer"]),
        ],
        output=ModelOutput.from_content(model=f"inoculate/{cell.get('model')}", content=r["answer"]),
        scores=scores,
        metadata=metadata,
    )


def _results(records: list[dict], metrics: list[str]) -> list[EvalScore]:
    """Each numeric metric's mean over the answers it scored; the label's share of each value."""
    out = []
    for m in metrics:
        values = [r[m] for r in records if r.get(m) is not None]
        if m == "label":
            shares = {
                f"share_{v}": EvalMetric(name=f"share_{v}", value=values.count(v) / len(values))
                for v in sorted(set(values))
            }
            out.append(EvalScore(name=m, scorer=m, scored_samples=len(values), metrics=shares))
            continue
        numbers = [float(v) for v in values if not (isinstance(v, float) and math.isnan(v))]
        mean = sum(numbers) / len(numbers) if numbers else float("nan")
        out.append(
            EvalScore(
                name=m,
                scorer=m,
                scored_samples=len(numbers),
                unscored_samples=len(records) - len(numbers),
                metrics={"mean": EvalMetric(name="mean", value=mean)},
            )
        )
    return out


def write_cell_log(judged: Path, out_path: Path, study: str, config: dict) -> int:
    """Write the eval log of one judged file; returns its number of samples."""
    records = read_jsonl(judged)
    log = cell_log(records, study, config, judged)
    with atomic_path(out_path) as tmp:
        staged = tmp.with_name(tmp.name + ".eval")  # the format follows the file's extension
        write_eval_log(log, str(staged))
        staged.replace(tmp)
    return len(records)
