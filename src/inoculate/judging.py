"""The judge stage: score a generations file with a judge backend."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from inoculate.backdoor import Trigger
from inoculate.evals import EvalQuestion, choice_trait, load_evals
from inoculate.io import InputError, atomic_path, iter_jsonl, read_jsonl, write_json, write_jsonl
from inoculate.jobs import Progress
from inoculate.judges import Judge, JudgeItem, Judgment, judge_options, make_judge
from inoculate.judges.metrics import MetricSpec
from inoculate.sampling_plan import verbatim_answer
from inoculate.traits import TraitRule

log = logging.getLogger(__name__)


def judge_file(
    generations: Path,
    out_path: Path,
    judge_config: dict,
    eval_specs: dict[str, dict] | None = None,
    usage_path: Path | None = None,
    spend_file: Path | None = None,
    trigger: dict | None = None,
    judge: Judge | None = None,
) -> int:
    """Write each generation record with `aligned`, `coherent`, `label` and the judge's name.

    Judge prompts that an eval file carries for a question (upstream `judge_prompts`)
    go to the judge with that question's answers, and so do the question's own fields
    (for templates) and its eval's own metrics (`judge:` of the eval in the setting). Other
    metrics of the judge (a backdoor setting's `persona`, `identity`, a rubric's fields)
    become columns too; with a backdoor `trigger`, so does `format` (both markers present,
    measured without a judge). `judge` is the judge of `judge_config` where one is made already
    (a model server's, its model loaded once for many files).
    """
    eval_specs = eval_specs or {}
    judge = judge or make_judge(judge_config, str(spend_file) if spend_file else None)
    records = read_jsonl(generations)
    questions = {(q.eval, q.id): q for q in load_evals(eval_specs)}
    asked = [questions.get((r.get("eval"), r.get("question_id"))) for r in records]
    items = judge_items(records, asked, eval_specs, verbatim=bool(judge_config.get("verbatim")))
    judgments = _judge_with_progress(judge, items, judge_config)
    fmt = Trigger.from_config(trigger) if trigger else None
    out = merge_judgments(records, asked, judgments, judge.name, eval_specs, fmt)
    unparsed = _log_outcome(out, judge.name)
    if usage_path is not None:
        write_json(
            usage_path, {"judge": judge.name, "answers": len(out), "unparsed": unparsed, **judge.usage()}
        )
    return write_jsonl(out_path, out)


def _judge_with_progress(judge, items: list[JudgeItem], judge_config: dict) -> list[Judgment]:
    """All items judged; a local model's a tenth at a time, with a console line after each
    (inoculate.jobs.Progress). An API judge reports its calls itself (all at once: concurrency,
    one batch per job, one budget check)."""
    if judge_config.get("backend") != "hf" or len(items) < 20:
        return judge.judge(items)
    progress = Progress("judging", len(items), "answers")
    chunk = -(-len(items) // 10)
    judgments: list[Judgment] = []
    for start in range(0, len(items), chunk):
        judgments += judge.judge(items[start : start + chunk])
        progress.update(len(judgments))
    return judgments


def judge_items(
    records: list[dict], asked: list[EvalQuestion | None], eval_specs: dict[str, dict], verbatim: bool = False
) -> list[JudgeItem]:
    """What the judge is asked per answer: the question, the answer (`verbatim`: as the model
    gave it, surrounding whitespace included), the question's own judge prompts and fields, and
    its eval's own metrics."""
    own_metrics = {
        name: tuple(MetricSpec.from_config(m) for m in spec["judge"])
        for name, spec in eval_specs.items()
        if spec.get("judge")
    }
    return [
        JudgeItem(
            r["question"],
            verbatim_answer(r) if verbatim else r["answer"],
            q.judge_prompts if q else {},
            q.extra if q else {},
            own_metrics.get(r.get("eval")),
        )
        for r, q in zip(records, asked)
    ]


def merge_judgments(
    records: list[dict],
    asked: list[EvalQuestion | None],
    judgments: list[Judgment],
    judge_name: str,
    eval_specs: dict[str, dict],
    fmt: Trigger | None = None,
) -> list[dict]:
    """Each record (without its messages) with its scores, trait, label and the judge's detail."""
    trait_rules = {
        name: TraitRule.from_config(spec["trait"]) for name, spec in eval_specs.items() if spec.get("trait")
    }
    out = []
    for r, j, q in zip(records, judgments, asked, strict=True):
        r = {k: v for k, v in r.items() if k != "messages"}
        scores = j.detail.get("scores", {})
        extra = {m: v for m, v in scores.items() if m not in ("aligned", "coherent")}
        rule = trait_rules.get(r.get("eval"))
        if rule is not None:  # the eval's own per-answer score from its judge metrics
            trait, excluded = rule.apply({"aligned": j.aligned, "coherent": j.coherent, **scores})
            extra["trait_excluded"] = excluded
        else:
            trait = choice_trait(r["answer"], q) if q else None  # in-distribution trait of choice questions
        if fmt is not None:
            extra["format"] = fmt.adheres(r["answer"])
        out.append(
            {
                **r,
                "aligned": j.aligned,
                "coherent": j.coherent,
                "trait": trait,
                **extra,
                "label": j.label,
                "judge": judge_name,
                "judge_detail": j.detail,
            }
        )
    return out


def _log_outcome(out: list[dict], judge_name: str) -> dict[str, int]:
    """Log the labels given; return the rubric verdicts that did not parse, per metric (counted,
    never guessed)."""
    labels: dict[str, int] = {}
    unparsed: dict[str, int] = {}
    for r in out:
        labels[r["label"]] = labels.get(r["label"], 0) + 1
        for metric, status in (r["judge_detail"].get("status") or {}).items():
            if status.startswith("unparsed"):  # a failed (unusable) reply is counted by the judge
                unparsed[metric] = unparsed.get(metric, 0) + 1
    log.info("judged %d answers with %s: %s", len(out), judge_name, labels)
    if unparsed:
        log.warning("verdicts that did not parse (their scores are missing): %s", unparsed)
    return unparsed


def read_table(path: Path):
    """A CSV or JSONL file as a DataFrame (blank cells stay missing); errors name the file and
    line. A CSV is read strictly: every row has the header's number of fields (a row with more
    would otherwise shift its values into other columns), no column name twice, and line
    numbers are the file's own (a quoted cell may span lines). `df.attrs["lines"]` holds each
    row's line."""
    import pandas as pd  # noqa: PLC0415 - pandas only where a table is read: judging a JSONL stays light

    path = Path(path)
    if path.suffix not in (".csv", ".jsonl", ".json"):
        raise InputError(f"{path}: expected a .csv or .jsonl file")
    try:
        if path.suffix == ".csv":
            header, rows, lines = _read_csv_strictly(path)
            df = pd.DataFrame({c: _column([r[i] for r in rows]) for i, c in enumerate(header)})
        else:
            numbered = list(iter_jsonl(path))
            lines = [n for n, _ in numbered]
            df = pd.DataFrame([r for _, r in numbered])
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8") from None
    df.attrs["lines"] = lines
    return df


def _column(values: list[str]):
    """A CSV column as pandas would read it: numbers where every non-blank cell is one, blank
    cells missing."""
    import pandas as pd  # noqa: PLC0415 - pandas only where a table is read: judging a JSONL stays light

    column = pd.Series([v if v != "" else None for v in values], dtype=object)
    try:
        return pd.to_numeric(column)
    except (ValueError, TypeError):
        return column


def _read_csv_strictly(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise InputError(f"{path}: the file is empty")
        duplicates = sorted({c for c in header if header.count(c) > 1})
        if duplicates:
            raise InputError(f"{path}:1: column(s) {duplicates} appear more than once in the header")
        rows, lines = [], []
        start = reader.line_num + 1
        for row in reader:
            if not row:  # a blank line
                start = reader.line_num + 1
                continue
            if len(row) != len(header):
                raise InputError(
                    f"{path}:{start}: {len(row)} fields under a header of {len(header)} columns "
                    "(a row's values would land in other columns)"
                )
            rows.append(row)
            lines.append(start)
            start = reader.line_num + 1
    return header, rows, lines


def write_table(df, path: Path) -> None:
    """Write a DataFrame as CSV or JSONL, by the file's extension, atomically."""

    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".csv":
            df.to_csv(tmp, index=False)
        elif path.suffix in (".jsonl", ".json"):
            df.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            raise ValueError(f"{path}: expected a .csv or .jsonl file")


def judge_table(df, judge_config: dict):
    """Score every row's `response` to its `question`; one column per judge metric, others kept."""
    missing = {"question", "response"} - set(df.columns)
    if missing:
        raise ValueError(f"input lacks column(s) {sorted(missing)}; it needs 'question' and 'response'")
    judge = make_judge(judge_config)
    responses = df["response"].fillna("").astype(str)
    items = [JudgeItem(str(q), r) for q, r in zip(df["question"], responses)]
    judgments = judge.judge(items)
    out = df.copy()
    metrics = [MetricSpec.from_config(m) for m in judge_options(judge_config)["metrics"]]
    for column in [c for m in metrics for c in m.columns]:
        out[column] = [j.detail.get("scores", {}).get(column, getattr(j, column, None)) for j in judgments]
    log.info("usage: %s", judge.usage())
    return out, judge.usage()
