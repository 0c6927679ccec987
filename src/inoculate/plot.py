"""Figures: consistent, colour-blind-safe colours per arm; PDF plus a PNG twin."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

# Okabe-Ito palette, fixed per arm name so every figure agrees.
OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
ARM_COLOURS = {
    "base": "#7F7F7F",
    "none": "#D55E00",
    "general": "#0072B2",
    "task_specific": "#009E73",
    "placebo": "#E69F00",
    "control": "#CC79A7",
    "unseen": "#56B4E9",
}
MARKERS = ["o", "s", "D", "^", "v", "P", "X", "*"]


def arm_colour(arm: str, order: list[str]) -> str:
    if arm in ARM_COLOURS:
        return ARM_COLOURS[arm]
    return OKABE_ITO[order.index(arm) % len(OKABE_ITO)]


def save(fig, pdf_path: Path) -> None:
    """Write `pdf_path` and its PNG twin."""
    pdf_path = Path(pdf_path)
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(pdf_path, bbox_inches="tight")
    fig.savefig(pdf_path.with_suffix(".png"), dpi=200, bbox_inches="tight")
    plt.close(fig)


def main_figure(summary: pd.DataFrame, rows: list[str], condition: str, distribution: str, title: str | None = None):
    """x = setting, y = P(misaligned) under `condition`, one marker per arm with CI bars;
    one panel per model."""
    d = summary[(summary.metric == "misaligned") & (summary.condition == condition) & (summary.distribution == distribution)]
    if d.empty:
        raise ValueError(f"summary has no misaligned rows for condition {condition!r} and {distribution}-distribution evals")
    models = list(dict.fromkeys(d.model))
    groups = list(dict.fromkeys(zip(d.setting, d["eval"])))
    arms = [r for r in rows if r in set(d.inoculation)]
    panel_width = max(3.0, 1.4 * len(groups) + 1.0)
    fig, axes = plt.subplots(1, len(models), figsize=(panel_width * len(models) + 1.5, 3.6), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models):
        _arm_markers(ax, d[d.model == model], groups, arms)
        ax.set_title(model if len(models) > 1 else "", fontsize=10)
        ax.set_xlabel("setting")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("P(misaligned)")
    which = {"in": "in-distribution", "out": "out-of-distribution"}[distribution]
    fig.suptitle(title or f"{which} evals, condition: {condition}", fontsize=10)
    axes[0][-1].legend(title="inoculation", frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


def _arm_markers(ax, d: pd.DataFrame, groups: list[tuple[str, str]], arms: list[str]) -> None:
    """One marker with CI bars per arm at each (setting, eval) group, arms side by side."""
    multi_eval = len(groups) != len({s for s, _ in groups})
    width = 0.8 / max(len(arms), 1)
    for i, arm in enumerate(arms):
        a = d[d.inoculation == arm].set_index(["setting", "eval"])
        xs, ys, lo, hi = [], [], [], []
        for x, g in enumerate(groups):
            if g in a.index:
                row = a.loc[g]
                xs.append(x - 0.4 + width * (i + 0.5))
                ys.append(row["mean"])
                lo.append(row["mean"] - row["ci_low"])
                hi.append(row["ci_high"] - row["mean"])
        ax.errorbar(
            xs, ys, yerr=[lo, hi], fmt=MARKERS[i % len(MARKERS)], color=arm_colour(arm, arms),
            label=arm, capsize=3, markersize=6, linestyle="none",
        )
    ax.set_xticks(range(len(groups)), [f"{s}\n{e}" if multi_eval else s for s, e in groups])
