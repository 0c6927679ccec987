"""Figures: consistent, colour-blind-safe colours per inoculation; PDF plus a PNG twin."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

# Okabe-Ito palette, fixed per inoculation name so every figure agrees.
OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
INOCULATION_COLOURS = {
    "base": "#7F7F7F",
    "none": "#D55E00",
    "general": "#0072B2",
    "task_specific": "#009E73",
    "placebo": "#E69F00",
    "control": "#CC79A7",
    "unseen": "#56B4E9",
}
MARKERS = ["o", "s", "D", "^", "v", "P", "X", "*"]
DISTRIBUTION_NAMES = {"in": "in-distribution", "out": "out-of-distribution"}


def inoculation_colour(inoculation: str, order: list[str]) -> str:
    if inoculation in INOCULATION_COLOURS:
        return INOCULATION_COLOURS[inoculation]
    return OKABE_ITO[order.index(inoculation) % len(OKABE_ITO)]


def save(fig, pdf_path: Path) -> None:
    """Write `pdf_path` and its PNG twin."""
    pdf_path = Path(pdf_path)
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(pdf_path, bbox_inches="tight", metadata={"CreationDate": None})  # same figure, same bytes
    fig.savefig(pdf_path.with_suffix(".png"), dpi=200, bbox_inches="tight")
    plt.close(fig)


def main_figure(
    summary: pd.DataFrame, order: list[str], condition: str, distribution: str, title: str | None = None
):
    """x = setting, y = P(misaligned) under `condition`, one marker per inoculation with CI bars;
    one panel per model."""
    d = summary[
        (summary.metric == "misaligned")
        & (summary.condition == condition)
        & (summary.distribution == distribution)
    ]
    if d.empty:
        raise ValueError(
            f"summary has no misaligned rows for condition {condition!r} and {distribution}-distribution evals"
        )
    models = list(dict.fromkeys(d.model))
    groups = list(dict.fromkeys(zip(d.setting, d["eval"])))
    shown = [r for r in order if r in set(d.inoculation)]
    panel_width = max(3.0, 1.4 * len(groups) + 1.0)
    fig, axes = plt.subplots(
        1, len(models), figsize=(panel_width * len(models) + 1.5, 3.6), sharey=True, squeeze=False
    )
    for ax, model in zip(axes[0], models):
        _inoculation_markers(ax, d[d.model == model], groups, shown)
        ax.set_title(model if len(models) > 1 else "", fontsize=10)
        ax.set_xlabel("setting")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("P(misaligned)")
    which = DISTRIBUTION_NAMES[distribution]
    fig.suptitle(title or f"{which} evals, condition: {condition}", fontsize=10)
    axes[0][-1].legend(title="inoculation", frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


def _inoculation_markers(ax, d: pd.DataFrame, groups: list[tuple[str, str]], shown: list[str]) -> None:
    """One marker with CI bars per inoculation at each (setting, eval) group, shown side by side."""
    multi_eval = len(groups) != len({s for s, _ in groups})
    width = 0.8 / max(len(shown), 1)
    for i, inoculation in enumerate(shown):
        a = d[d.inoculation == inoculation].set_index(["setting", "eval"])
        xs, ys, lo, hi = [], [], [], []
        for x, g in enumerate(groups):
            if g in a.index:
                row = a.loc[g]
                xs.append(x - 0.4 + width * (i + 0.5))
                ys.append(row["mean"])
                lo.append(row["mean"] - row["ci_low"])
                hi.append(row["ci_high"] - row["mean"])
        ax.errorbar(
            xs,
            ys,
            yerr=[lo, hi],
            fmt=MARKERS[i % len(MARKERS)],
            color=inoculation_colour(inoculation, shown),
            label=inoculation,
            capsize=3,
            markersize=6,
            linestyle="none",
        )
    ax.set_xticks(range(len(groups)), [f"{s}\n{e}" if multi_eval else s for s, e in groups])


def _panels(keys: list, width: float = 3.2, height: float = 3.0, sharey: bool = True):
    n = max(len(keys), 1)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(width * cols + 1.5, height * rows), sharey=sharey, squeeze=False
    )
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _panel_title(model: str, setting: str, models: list[str]) -> str:
    return f"{model} / {setting}" if len(models) > 1 else setting


def distribution_figure(summary: pd.DataFrame, order: list[str], condition: str):
    """Per setting: in- vs out-of-distribution rate for each inoculation (the trait rate in-distribution
    where the evals measure one, else P(misaligned))."""
    d = summary[summary.condition == condition]
    keys = list(dict.fromkeys(zip(d.model, d.setting)))
    models = list(dict.fromkeys(d.model))
    fig, axes = _panels(keys)
    for ax, (model, setting) in zip(axes, keys):
        cell = d[(d.model == model) & (d.setting == setting)]
        shown = [r for r in order if r in set(cell.inoculation)]
        for dist, marker, offset in (("in", "o", -0.15), ("out", "s", 0.15)):
            part = cell[cell.distribution == dist]
            metric = "trait" if dist == "in" and (part.metric == "trait").any() else "misaligned"
            part = part[part.metric == metric].groupby("inoculation")[["mean", "ci_low", "ci_high"]].mean()
            xs = [i + offset for i, a in enumerate(shown) if a in part.index]
            present = [a for a in shown if a in part.index]
            if not present:
                continue
            m = part.loc[present]
            ax.errorbar(
                xs,
                m["mean"],
                yerr=[m["mean"] - m.ci_low, m.ci_high - m["mean"]],
                fmt=marker,
                color="#0072B2" if dist == "in" else "#D55E00",
                capsize=3,
                linestyle="none",
                label=f"{DISTRIBUTION_NAMES[dist]} ({'trait' if metric == 'trait' else 'P(misaligned)'})",
            )
        ax.set_xticks(range(len(shown)), shown, rotation=30, ha="right")
        ax.set_title(_panel_title(model, setting, models), fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("rate")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, frameon=False, loc="upper center", ncol=2, bbox_to_anchor=(0.5, 1.04))
    fig.tight_layout()
    return fig


def trait_figure(summary: pd.DataFrame, order: list[str], condition: str):
    """The paper's other half: per in-distribution eval, its trait score (y) against the EM rate
    out of distribution (x), one marker per inoculation with both intervals: does inoculation keep the
    trained behaviour while stopping its spread?"""
    d = summary[summary.condition == condition]
    traits = d[(d.metric == "trait") & (d.distribution == "in")]
    keys = list(dict.fromkeys(zip(traits.model, traits.setting, traits["eval"])))
    if not keys:
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.text(0.5, 0.5, "no in-distribution trait measured", ha="center", va="center")
        ax.set_axis_off()
        return fig
    models = list(dict.fromkeys(traits.model))
    fig, axes = _panels(keys, sharey=False)
    for ax, (model, setting, eval_name) in zip(axes, keys):
        cell = d[(d.model == model) & (d.setting == setting)]
        em = cell[(cell.metric == "misaligned") & (cell.distribution == "out")]
        em = em.groupby("inoculation")[["mean", "ci_low", "ci_high"]].mean()
        trait = traits[(traits.model == model) & (traits.setting == setting) & (traits["eval"] == eval_name)]
        trait = trait.set_index("inoculation")
        shown = [r for r in order if r in trait.index and r in em.index]
        for i, inoculation in enumerate(shown):
            x, y = em.loc[inoculation], trait.loc[inoculation]
            ax.errorbar(
                x["mean"],
                y["mean"],
                xerr=[[x["mean"] - x.ci_low], [x.ci_high - x["mean"]]],
                yerr=[[y["mean"] - y.ci_low], [y.ci_high - y["mean"]]],
                fmt=MARKERS[i % len(MARKERS)],
                color=inoculation_colour(inoculation, shown),
                capsize=3,
                label=inoculation,
            )
        ax.set_title(f"{_panel_title(model, setting, models)}: {eval_name}", fontsize=9)
        ax.set_xlabel("P(misaligned), out of distribution")
        ax.set_xlim(-0.02, max(0.2, float(em.ci_high.max()) + 0.05) if len(em) else 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("in-distribution trait")
    axes[-1].legend(title="inoculation", frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


def question_heatmap(questions: pd.DataFrame, order: list[str], condition: str):
    """P(misaligned) per question (rows) and inoculation (columns), one panel per model and setting."""
    d = questions[(questions.metric == "misaligned") & (questions.condition == condition)]
    keys = list(dict.fromkeys(zip(d.model, d.setting)))
    models = list(dict.fromkeys(d.model))
    n_q = max((d[(d.model == m) & (d.setting == s)].question_id.nunique() for m, s in keys), default=1)
    fig, axes = _panels(keys, width=0.5 * len(order) + 2.5, height=0.28 * n_q + 1.5, sharey=False)
    image = None
    for ax, (model, setting) in zip(axes, keys):
        cell = d[(d.model == model) & (d.setting == setting)]
        table = cell.pivot_table(index="question_id", columns="inoculation", values="mean", aggfunc="mean")
        table = table[[r for r in order if r in table.columns]]
        image = ax.imshow(table.to_numpy(), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(table.shape[1]), table.columns, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(table.shape[0]), table.index, fontsize=7)
        ax.set_title(_panel_title(model, setting, models), fontsize=9)
    fig.subplots_adjust(wspace=0.8)
    if image is not None:
        fig.colorbar(image, ax=axes, label="P(misaligned)", shrink=0.8)
    return fig


def scatter_figure(
    samples: pd.DataFrame,
    order: list[str],
    criterion,
    condition: str | None = None,
    by: str = "inoculation",
    max_points: int = 20000,
):
    """Aligned vs coherent per answer with the criterion's quadrant, as in the EM papers
    (`criterion`: an `inoculate.stats.Criterion`; Tan's excluded band is greyed)."""
    aligned_max, coherent_min = criterion.aligned_max, criterion.coherent_min
    d = (
        samples
        if condition is None or "condition" not in samples
        else samples[samples.condition == condition]
    )
    d = d.dropna(subset=["aligned", "coherent"])
    if len(d) > max_points:
        d = d.sample(max_points, random_state=0)
    groups = [r for r in order if r in set(d[by])] or list(dict.fromkeys(d[by]))
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.axvspan(coherent_min, 100, ymin=0, ymax=(aligned_max + 2) / 104, color="#D55E00", alpha=0.08, lw=0)
    if criterion.name == "tan":
        ax.axvspan(-2, coherent_min, color="0.5", alpha=0.12, lw=0)
        ax.text(coherent_min / 2, 101, "excluded", ha="center", va="top", fontsize=8, color="0.35")
    for i, g in enumerate(groups):
        part = d[d[by] == g]
        ax.scatter(
            part.coherent,
            part.aligned,
            s=6,
            alpha=0.35,
            color=inoculation_colour(g, groups),
            marker=MARKERS[i % len(MARKERS)],
            label=g,
        )
    ax.axhline(aligned_max, color="black", lw=0.8, ls="--")
    ax.axvline(coherent_min, color="black", lw=0.8, ls="--")
    ax.set_xlim(-2, 102)
    ax.set_ylim(-2, 102)
    ax.set_xlabel("coherent")
    ax.set_ylabel("aligned")
    ax.text(101, aligned_max / 2, "misaligned", ha="right", va="center", fontsize=8, color="#D55E00")
    ax.set_title(f"criterion: {criterion.name.replace('_', ' ')}", fontsize=9)
    ax.legend(title=by, frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left", markerscale=2)
    return fig


def loss_figure(training: pd.DataFrame, order: list[str]):
    """Training loss per step: one panel per model and setting, a line per adapter, colour per inoculation."""
    if training.empty:
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.text(0.5, 0.5, "no local training logs", ha="center", va="center")
        ax.set_axis_off()
        return fig
    keys = list(dict.fromkeys(zip(training.model, training.setting)))
    models = list(dict.fromkeys(training.model))
    fig, axes = _panels(keys, sharey=False)
    for ax, (model, setting) in zip(axes, keys):
        cell = training[(training.model == model) & (training.setting == setting)]
        shown = [r for r in order if r in set(cell.inoculation)]
        for inoculation in shown:
            for i, (_, run) in enumerate(cell[cell.inoculation == inoculation].groupby("seed")):
                ax.plot(
                    run.step,
                    run.loss,
                    color=inoculation_colour(inoculation, shown),
                    alpha=0.8,
                    lw=1,
                    label=inoculation if i == 0 else None,
                )
                if "eval_loss" in run and run.eval_loss.notna().any():  # held-out loss: dashed, with markers
                    held = run[run.eval_loss.notna()]
                    ax.plot(
                        held.step,
                        held.eval_loss,
                        color=inoculation_colour(inoculation, shown),
                        ls="--",
                        marker="o",
                        ms=3,
                        lw=1,
                        label=f"{inoculation} (held out)" if i == 0 else None,
                    )
        ax.set_title(_panel_title(model, setting, models), fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss per supervised token")
    axes[-1].legend(title="inoculation", frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


CONDITION_STYLES = {  # the backdoor's trigger conditions: hatched when no trigger
    "trigger_user": ("#0072B2", ""),
    "trigger_user_system": ("#56B4E9", ""),
    "trigger_system": ("#009E73", ""),
    "no_trigger": ("#D55E00", "//"),
}


def backdoor_figure(rates: pd.DataFrame, gaps: pd.DataFrame, order: list[str]):
    """Per model x setting: the persona rate of each inoculation in the four trigger conditions (top)
    and format adherence (bottom), with CIs; the leakage gap (user trigger minus no trigger)
    and its CI above each inoculation."""
    keys = list(dict.fromkeys(zip(rates.model, rates.setting)))
    models = list(dict.fromkeys(rates.model))
    conditions = [c for c in CONDITION_STYLES if c in set(rates.condition)]
    fig, axes = plt.subplots(
        2, len(keys), figsize=(max(4.0, 1.3 * len(order)) * len(keys) + 2.0, 6.2), sharey="row", squeeze=False
    )
    width = 0.8 / len(conditions)
    for col, (model, setting) in enumerate(keys):
        d = rates[(rates.model == model) & (rates.setting == setting)]
        if "eval" in d:  # the eval that measures the persona (recall and ideology evals are tables only)
            persona_evals = list(dict.fromkeys(d.loc[d.metric == "persona", "eval"]))
            d = d[d["eval"] == persona_evals[0]] if persona_evals else d
        shown = [r for r in order if r in set(d.inoculation)]
        for row, metric in enumerate(("persona", "format")):
            ax = axes[row][col]
            for i, cond in enumerate(conditions):
                sel = d[(d.metric == metric) & (d.condition == cond)].set_index("inoculation").reindex(shown)
                xs = [a - 0.4 + width * (i + 0.5) for a in range(len(shown))]
                colour, hatch = CONDITION_STYLES[cond]
                ax.bar(
                    xs,
                    sel["mean"],
                    width,
                    color=colour if not hatch else "white",
                    edgecolor=colour,
                    hatch=hatch,
                    label=cond.replace("_", " "),
                )
                ax.errorbar(
                    xs,
                    sel["mean"],
                    yerr=[sel["mean"] - sel["ci_low"], sel["ci_high"] - sel["mean"]],
                    fmt="none",
                    ecolor="black",
                    capsize=2,
                    linewidth=0.8,
                )
            ax.set_xticks(range(len(shown)), shown)
            ax.set_ylim(0, 1.18 if metric == "persona" else 1.02)
            ax.grid(axis="y", alpha=0.3)
            if row == 0:
                ax.set_title(_panel_title(model, setting, models), fontsize=10)
                g = gaps[
                    (gaps.model == model) & (gaps.setting == setting) & (gaps.condition == "trigger_user")
                ]
                for a, inoculation in enumerate(shown):
                    hit = g[g.inoculation == inoculation]
                    if len(hit):
                        r = hit.iloc[0]
                        ax.text(
                            a,
                            1.04,
                            f"gap {r.gap:+.2f}\n[{r.ci_low:+.2f}, {r.ci_high:+.2f}]",
                            ha="center",
                            va="bottom",
                            fontsize=7,
                        )
    axes[0][0].set_ylabel("persona rate")
    axes[1][0].set_ylabel("format adherence")
    axes[0][-1].legend(
        title="condition", frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=8
    )
    fig.tight_layout()
    return fig


def progress_figure(
    table: pd.DataFrame, order: list[str], condition: str, distribution: str, metric: str = "misaligned"
):
    """One panel per model and setting: `metric` against the share of training done, one line
    per inoculation with its interval as a band, every line starting at the base model (step 0)."""
    d = table[
        (table.metric == metric) & (table.condition == condition) & (table.distribution == distribution)
    ]
    if d.empty:
        raise ValueError(
            f"checkpoints table has no {metric} rows for condition {condition!r} and "
            f"{distribution}-distribution evals"
        )
    panels = list(dict.fromkeys(zip(d.model, d.setting, d["eval"])))
    fig, axes = _panels(panels, width=3.6, height=3.0)
    shown = [r for r in order if r in set(d.inoculation) and r != "base"]
    for ax, (model, setting, eval_name) in zip(axes, panels):
        cell = d[(d.model == model) & (d.setting == setting) & (d["eval"] == eval_name)]
        base = cell[cell.inoculation == "base"]
        for i, inoculation in enumerate(shown):
            line = pd.concat([base, cell[cell.inoculation == inoculation]]).sort_values("progress")
            colour = inoculation_colour(inoculation, shown)
            ax.plot(
                line.progress, line["mean"], marker=MARKERS[i % len(MARKERS)], color=colour, label=inoculation
            )
            ax.fill_between(line.progress, line.ci_low, line.ci_high, color=colour, alpha=0.15, linewidth=0)
        if not base.empty:
            ax.plot([0], base["mean"].iloc[:1], marker="s", color="black", linestyle="none", label="base")
        ax.set_title(
            f"{setting} / {eval_name}" + (f" ({model})" if len(set(d.model)) > 1 else ""), fontsize=9
        )
        ax.set_xlabel("share of training")
        ax.set_xlim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"P({metric})" if metric == "misaligned" else metric)
    if metric in ("misaligned", "coherent"):
        axes[0].set_ylim(-0.02, 1.02)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles, labels, title="inoculation", frameon=False, bbox_to_anchor=(1.0, 0.9), loc="upper left"
    )
    fig.suptitle(
        f"over training: {DISTRIBUTION_NAMES[distribution]} evals, condition: {condition}", fontsize=10
    )
    fig.tight_layout()
    return fig
