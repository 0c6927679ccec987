"""Judge calibration: how a study's judge agrees with the published one on answers whose
published scores are known.

A rate from another judge (a newer GPT, a local model) is comparable with published rates
only once someone has measured how the two judges agree. This stage takes a fixed, seeded
sample of judged answers (by default the Model Organisms files judged by
gpt-4o-2024-08-06), has the study's judge score them with the prompts they were judged with
(the eval file's `judge_prompts`, matched by question id), and reports per score the mean
absolute difference and Spearman's correlation, and per criterion the agreement on the
misaligned label (Cohen's kappa) and both judges' misaligned rates with intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from inoculate.evals import load_eval_file
from inoculate.io import InputError, write_csv
from inoculate.judges import JudgeItem, make_judge
from inoculate.judges.reference import PUBLISHED_JUDGE
from inoculate.plot import plt, save
from inoculate.reanalysis import load_judged
from inoculate.stats import CONFIDENCE, CRITERIA, N_BOOT, RNG_SEED, Criterion, bootstrap_mean

SCORES = ("aligned", "coherent")


def sample_answers(paths: Sequence[Path], per_file: int, seed: int) -> pd.DataFrame:
    """`per_file` answers of each file with both published scores, drawn with `seed` (the
    same rows on every machine): columns source, question_id, question, response,
    aligned_published, coherent_published."""
    judged = load_judged(paths)
    if "question" not in judged:
        raise InputError(f"{', '.join(map(str, paths))}: calibration needs a 'question' column")
    frames = []
    for i, (source, rows) in enumerate(judged.groupby("source", sort=True)):
        rows = rows.dropna(subset=list(SCORES))
        take = rows.sample(n=min(per_file, len(rows)), random_state=seed + i) if len(rows) else rows
        frames.append(take.sort_values("sample"))
    out = pd.concat(frames, ignore_index=True)[["source", "question_id", "question", "response", *SCORES]]
    return out.rename(columns={s: f"{s}_published" for s in SCORES})


def judge_prompts_by_question(eval_file: Path | str | None) -> dict[str, dict[str, str]]:
    """question id -> the judge prompts an eval file carries for it (none without a file)."""
    if not eval_file:
        return {}
    return {q.id: q.judge_prompts for q in load_eval_file(eval_file, "calibration") if q.judge_prompts}


def judge_sample(
    sample: pd.DataFrame,
    judge_config: dict,
    prompts: dict[str, dict[str, str]],
    spend_file: str | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The sample with `aligned_judge` and `coherent_judge` from the study's judge, and its usage."""
    config = {**judge_config, "metrics": list(SCORES)}
    judge = make_judge(config, spend_file)
    items = [
        JudgeItem(str(q), str(r), prompts.get(str(qid), {}))
        for q, r, qid in zip(sample["question"], sample["response"].fillna(""), sample["question_id"])
    ]
    judgments = judge.judge(items)
    out = sample.copy()
    out["aligned_judge"] = [j.aligned for j in judgments]
    out["coherent_judge"] = [j.coherent for j in judgments]
    return out, judge.usage()


def spearman(x: pd.Series, y: pd.Series) -> float:
    """Spearman's rank correlation (average ranks for ties) of the pairs where both are present."""
    both = x.notna() & y.notna()
    if both.sum() < 3:
        return float("nan")
    rx, ry = x[both].rank(), y[both].rank()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def cohen_kappa(a: pd.Series, b: pd.Series) -> float:
    """Cohen's kappa of two 0/1 labellings over the items both labelled."""
    both = a.notna() & b.notna()
    a, b = a[both].astype(int), b[both].astype(int)
    if len(a) == 0:
        return float("nan")
    observed = float((a == b).mean())
    p_a, p_b = float(a.mean()), float(b.mean())
    expected = p_a * p_b + (1 - p_a) * (1 - p_b)
    if expected == 1.0:
        return 1.0 if observed == 1.0 else float("nan")
    return (observed - expected) / (1 - expected)


def agreement(
    judged: pd.DataFrame,
    criteria: Sequence[Criterion] | None = None,
    n_boot: int = N_BOOT,
    confidence: float = CONFIDENCE,
    rng_seed: int = RNG_SEED,
) -> pd.DataFrame:
    """One row per score (n, mean_abs_diff, spearman) and per criterion (n, kappa, both rates
    with percentile intervals that resample files, then answers within them)."""
    criteria = list(criteria or [Criterion.named(name) for name in CRITERIA])
    rows = []
    for score in SCORES:
        published, judge = judged[f"{score}_published"], judged[f"{score}_judge"]
        both = published.notna() & judge.notna()
        rows.append(
            {
                "kind": "score",
                "name": score,
                "n": int(both.sum()),
                "n_missing": int((~both).sum()),
                "mean_abs_diff": float((published[both] - judge[both]).abs().mean())
                if both.any()
                else np.nan,
                "spearman": spearman(published, judge),
            }
        )
    rng = np.random.default_rng(rng_seed)
    for criterion in criteria:
        labels = {}
        for who in ("published", "judge"):
            labels[who] = criterion.misaligned(judged[f"aligned_{who}"], judged[f"coherent_{who}"])
        both = labels["published"].notna() & labels["judge"].notna()
        row = {
            "kind": "label",
            "name": criterion.name,
            "criterion": criterion.describe(),
            "n": int(both.sum()),
            "n_missing": int((~both).sum()),
            "kappa": cohen_kappa(labels["published"], labels["judge"]),
        }
        for who in ("published", "judge"):
            valid = labels[who].notna()
            mean, low, high = bootstrap_mean(
                labels[who][valid].to_numpy(),
                [judged.loc[valid, "source"].to_numpy()],
                n_boot,
                confidence,
                rng,
            )
            row.update({f"rate_{who}": mean, f"rate_{who}_low": low, f"rate_{who}_high": high})
        rows.append(row)
    columns = [
        "kind",
        "name",
        "criterion",
        "n",
        "n_missing",
        "mean_abs_diff",
        "spearman",
        "kappa",
        "rate_published",
        "rate_published_low",
        "rate_published_high",
        "rate_judge",
        "rate_judge_low",
        "rate_judge_high",
    ]
    return pd.DataFrame(rows).reindex(columns=columns)


def scatter_figure(judged: pd.DataFrame, judge_name: str, published_name: str = PUBLISHED_JUDGE):
    """Each answer's published score against the study judge's, one panel per score."""
    fig, axes = plt.subplots(1, len(SCORES), figsize=(4.2 * len(SCORES), 4.0), squeeze=False)
    for ax, score in zip(axes[0], SCORES):
        x, y = judged[f"{score}_published"], judged[f"{score}_judge"]
        for source, rows in judged.groupby("source", sort=True):
            ax.scatter(rows[f"{score}_published"], rows[f"{score}_judge"], s=10, alpha=0.6, label=source)
        ax.plot([0, 100], [0, 100], color="grey", linewidth=0.8, linestyle="--")
        ax.set(
            xlim=(-2, 102),
            ylim=(-2, 102),
            xlabel=f"{score} ({published_name})",
            ylabel=f"{score} ({judge_name})",
            title=f"{score}: Spearman {spearman(x, y):.2f}",
        )
    axes[0][0].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return fig


def write_calibration(
    judged: pd.DataFrame,
    table_path: Path,
    figure_path: Path,
    judge_name: str,
    judged_path: Path | None = None,
    **bootstrap,
) -> pd.DataFrame:
    """Agreement table (with the judge's name, so doctor can tell which judge was calibrated),
    scatter figure, and the judged sample itself."""
    table = agreement(judged, **bootstrap)
    table.insert(0, "judge", judge_name)
    table.insert(1, "published_judge", PUBLISHED_JUDGE)
    write_csv(table_path, table)
    if judged_path is not None:
        write_csv(judged_path, judged)
    save(scatter_figure(judged, judge_name), figure_path)
    return table


def judge_name(judge_config: dict) -> str:
    """How the calibration table names a judge: its model (and endpoint when not OpenAI's)."""
    name = str(judge_config.get("model", judge_config.get("backend", "?")))
    if judge_config.get("base_url"):
        name += f" @ {judge_config['base_url']}"
    return name


def calibrated_judges(table_path: Path) -> set[str]:
    """The judges an existing calibration table measured."""
    try:
        return set(pd.read_csv(table_path)["judge"].astype(str))
    except (FileNotFoundError, KeyError, pd.errors.EmptyDataError):
        return set()
