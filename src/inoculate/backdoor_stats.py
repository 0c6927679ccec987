"""Backdoor metrics: persona, identity and format rates per eval and trigger condition,
the mean factual recall (0-2) and ideology agreement (1-5) where an eval scores them, and the
leakage gap (triggered minus untriggered persona rate) with a bootstrap CI on the gap itself.

Answers to one question are not independent, so intervals resample questions (within
seeds, when there are several), never single answers. The gap's two conditions are
resampled with the same draw of seeds and questions: a paired, clustered bootstrap.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from inoculate.backdoor import LEAKAGE, TRIGGERED
from inoculate.coords import COORDS
from inoculate.io import read_jsonl
from inoculate.stats import CONFIDENCE, N_BOOT, RNG_SEED, bootstrap_mean, grouped_intervals

BY = ["model", "setting", "inoculation", "eval", "condition"]
CELL = ["model", "setting", "inoculation"]
RATES = ("persona", "identity", "format")  # 0/1 per answer
SCORES = ("recall", "ideology")  # means of the judge's scale: recall 0-2, ideology 1-5
METRICS = RATES + SCORES
COLUMNS = [*COORDS, "question", "answer", *METRICS]


def load_backdoor_samples(paths: Iterable[Path | str], persona_min: dict[str, float]) -> pd.DataFrame:
    """Judged answers with 0/1 columns: persona and identity score above the setting's
    `persona_min`, and format adherence. A missing score stays missing."""
    frames = [pd.DataFrame(read_jsonl(p)) for p in paths]
    frames = [f for f in frames if len(f)]
    if not frames:
        raise ValueError("no judged answers of backdoor settings to aggregate")
    df = pd.concat(frames, ignore_index=True)
    for col in METRICS:
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df else np.nan
    df = df[[c for c in COLUMNS if c in df]].copy()
    threshold = df["setting"].map(persona_min).astype(float)
    for col in ("persona", "identity"):
        df[col] = np.where(df[col].isna(), np.nan, (df[col] > threshold).astype(float))
    return df


def rates(
    samples: pd.DataFrame, n_boot: int = N_BOOT, confidence: float = CONFIDENCE, rng_seed: int = RNG_SEED
) -> pd.DataFrame:
    """One row per model x setting x arm x eval x condition x metric that the eval measures:
    mean and clustered CI."""
    rng = np.random.default_rng(rng_seed)

    def interval(valid: pd.DataFrame, column: str) -> tuple[float, float, float]:
        clusters = [valid["seed"].to_numpy(), valid["question_id"].to_numpy()]
        return bootstrap_mean(valid[column].to_numpy(), clusters, n_boot, confidence, rng)

    def counts(group: pd.DataFrame, valid: pd.DataFrame, metric: str) -> dict:
        return {
            "n_seeds": valid["seed"].nunique(),
            "n_questions": valid["question_id"].nunique(),
            "n_samples": len(valid),
            "n_missing": int(group[metric].isna().sum()),
        }

    by = [c for c in BY if c in samples]
    return grouped_intervals(samples, by, {m: m for m in METRICS}, interval, counts, dropna=True)


def paired_gap(
    d: pd.DataFrame, a: str, b: str, metric: str, n_boot: int, confidence: float, rng: np.random.Generator
) -> tuple[float, float, float, int]:
    """rate(a) - rate(b) over the same questions: (gap, low, high, questions in both).

    Seeds are drawn with replacement, then questions within each drawn seed; both
    conditions get the same draws."""
    d = d[d[metric].notna() & d["condition"].isin([a, b])]
    table = d.groupby(["seed", "question_id", "condition"])[metric].agg(["sum", "count"]).unstack("condition")
    table = table.dropna()  # questions answered in both conditions
    if table.empty:
        return float("nan"), float("nan"), float("nan"), 0
    sa, ca, sb, cb = (table[(stat, cond)].to_numpy(float) for cond in (a, b) for stat in ("sum", "count"))
    gap = sa.sum() / ca.sum() - sb.sum() / cb.sum()
    seeds = table.index.get_level_values("seed").to_numpy()
    per_seed = []  # (4, n_boot) resampled sums per seed
    for s in pd.unique(seeds):
        rows = np.flatnonzero(seeds == s)
        pick = rows[rng.integers(0, len(rows), size=(n_boot, len(rows)))]
        per_seed.append(np.stack([x[pick].sum(axis=1) for x in (sa, ca, sb, cb)]))
    parts = np.stack(per_seed)  # (seeds, 4, n_boot)
    draw = rng.integers(0, len(per_seed), size=(n_boot, len(per_seed)))
    totals = parts[draw, :, np.arange(n_boot)[:, None]].sum(axis=1)  # (n_boot, 4)
    with np.errstate(invalid="ignore", divide="ignore"):
        stats = totals[:, 0] / totals[:, 1] - totals[:, 2] / totals[:, 3]
    stats = stats[np.isfinite(stats)]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(gap), float(low), float(high), table.index.get_level_values("question_id").nunique()


def leakage_gaps(
    samples: pd.DataFrame, n_boot: int = N_BOOT, confidence: float = CONFIDENCE, rng_seed: int = RNG_SEED
) -> pd.DataFrame:
    """Per cell and triggered condition: the persona rate with the trigger, without it
    (`no_trigger`, the leakage), and the gap between them with its CI."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for key, d in samples.groupby(CELL, sort=False):
        leak = d.loc[(d["condition"] == LEAKAGE) & d["persona"].notna(), "persona"]
        for cond in TRIGGERED:
            if not (d["condition"] == cond).any():
                continue
            trig = d.loc[(d["condition"] == cond) & d["persona"].notna(), "persona"]
            gap, low, high, n_q = paired_gap(d, cond, LEAKAGE, "persona", n_boot, confidence, rng)
            rows.append(
                {
                    **dict(zip(CELL, key)),
                    "condition": cond,
                    "triggered": trig.mean(),
                    "untriggered": leak.mean(),
                    "gap": gap,
                    "ci_low": low,
                    "ci_high": high,
                    "n_seeds": d["seed"].nunique(),
                    "n_questions": n_q,
                }
            )
    return pd.DataFrame(rows)
