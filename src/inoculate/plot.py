"""Figures: consistent, colour-blind-safe colours per inoculation; PDF plus a PNG twin."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

# Colour-blind-safe colours that read on white (Okabe-Ito without its yellow, then Paul Tol's
# muted set without its sand). The arms the papers share keep one colour in every study; any
# other arm takes the next free colour by its place in the study's arm order, so an arm has
# one colour and one marker in every figure of a study.
NAMED_COLOURS = {
    "base": "#7F7F7F",
    "none": "#D55E00",
    "general": "#0072B2",
    "task_specific": "#009E73",
    "placebo": "#E69F00",
    "control": "#CC79A7",
    "unseen": "#56B4E9",
}
MORE_COLOURS = ["#332288", "#117733", "#882255", "#44AA99", "#999933", "#AA4499", "#CC6677", "#000000"]
MARKERS = ["o", "s", "D", "^", "v", "P", "X", "*"]
DISTRIBUTION_NAMES = {"in": "in-distribution", "out": "out-of-distribution"}


@dataclass(frozen=True)
class Style:
    """A study's look in every figure: each arm's colour, marker and label, each setting's
    label, and the confidence of the intervals drawn."""

    order: tuple[str, ...] = ()
    arm_labels: dict = field(default_factory=dict)
    setting_labels: dict = field(default_factory=dict)
    confidence: float = 0.95

    @classmethod
    def of(cls, order: list[str], labels: dict | None = None, confidence: float = 0.95) -> Style:
        labels = labels or {}
        return cls(tuple(order), dict(labels.get("arms", {})), dict(labels.get("settings", {})), confidence)

    def _index(self, arm: str) -> int:
        return (
            self.order.index(arm)
            if arm in self.order
            else len(self.order) + zlib.crc32(str(arm).encode()) % len(MARKERS)
        )

    def colour(self, arm: str) -> str:
        if arm in NAMED_COLOURS:
            return NAMED_COLOURS[arm]
        others = [a for a in self.order if a not in NAMED_COLOURS]
        i = others.index(arm) if arm in others else self._index(arm)
        return MORE_COLOURS[i % len(MORE_COLOURS)]

    def marker(self, arm: str) -> str:
        return MARKERS[self._index(arm) % len(MARKERS)]

    def arm(self, arm: str) -> str:
        return self.arm_labels.get(arm) or str(arm).replace("_", " ")

    def setting(self, setting: str) -> str:
        return self.setting_labels.get(setting) or str(setting).replace("_", " ")

    def shown(self, present) -> list[str]:
        """The arms present, in the study's order (any others after them)."""
        present = list(dict.fromkeys(present))
        return [a for a in self.order if a in present] + [a for a in present if a not in self.order]


def facts(
    rows: pd.DataFrame, style: Style, conditions: list[str] | None = None, intervals: bool = True
) -> str:
    """What a figure shows, in one line under it: criterion, condition(s), seeds, interval."""
    parts = []
    criteria = [c for c in dict.fromkeys(rows.get("criterion", pd.Series(dtype=str)).dropna()) if c]
    if criteria:
        parts.append(f"criterion: {', '.join(map(str, criteria))}")
    if conditions is None and "condition" in rows:
        conditions = list(dict.fromkeys(rows.condition))
    if conditions:
        parts.append(f"condition{'s' if len(conditions) > 1 else ''}: {', '.join(conditions)}")
    trained = rows[rows.inoculation != "base"] if "inoculation" in rows else rows
    seeds = sorted({int(n) for n in trained.get("n_seeds", pd.Series(dtype=float)).dropna()})
    if seeds:
        n = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
        parts.append(f"seeds per cell: {n}")
        if seeds == [1]:
            parts.append("one seed: no interval over seeds")
    if intervals and {"ci_low", "ci_high"} <= set(rows):
        parts.append(f"bars: {style.confidence:.0%} bootstrap intervals")
    return "; ".join(parts)


def _caption(fig, text: str) -> None:
    """`text` in one line under everything the figure draws (tick labels included)."""
    if not text:
        return
    box = fig.get_tightbbox(fig.canvas.get_renderer())  # inches
    height = fig.get_size_inches()[1]
    fig.text(
        box.x0 / fig.get_size_inches()[0],
        (box.y0 - 0.08) / height,
        text,
        ha="left",
        va="top",
        fontsize=7,
        color="0.25",
    )


def save(fig, pdf_path: Path) -> None:
    """Write `pdf_path` and its PNG twin."""
    pdf_path = Path(pdf_path)
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(pdf_path, bbox_inches="tight", metadata={"CreationDate": None})  # same figure, same bytes
    fig.savefig(pdf_path.with_suffix(".png"), dpi=200, bbox_inches="tight")
    plt.close(fig)


def main_figure(summary: pd.DataFrame, style: Style, distribution: str, title: str | None = None):
    """x = setting, y = P(misaligned), one marker per arm with its interval; one panel per model
    and condition, every condition the study tests shown."""
    d = summary[(summary.metric == "misaligned") & (summary.distribution == distribution)]
    if d.empty:
        raise ValueError(f"summary has no misaligned rows for {distribution}-distribution evals")
    models = list(dict.fromkeys(d.model))
    conditions = list(dict.fromkeys(d.condition))
    groups = list(dict.fromkeys(zip(d.setting, d["eval"])))
    shown = style.shown(d.inoculation)
    panel_width = max(3.0, 1.4 * len(groups) + 1.0)
    fig, axes = plt.subplots(
        len(models),
        len(conditions),
        figsize=(panel_width * len(conditions) + 1.5, 3.4 * len(models) + 0.4),
        sharey=True,
        squeeze=False,
    )
    for r, model in enumerate(models):
        for c, condition in enumerate(conditions):
            ax = axes[r][c]
            _inoculation_markers(ax, d[(d.model == model) & (d.condition == condition)], groups, shown, style)
            heading = [model] if len(models) > 1 else []
            heading += [f"condition: {condition}"] if len(conditions) > 1 else []
            ax.set_title(" / ".join(heading), fontsize=10)
            ax.grid(axis="y", alpha=0.3)
        axes[r][0].set_ylabel("P(misaligned)")
    for ax in axes[-1]:
        ax.set_xlabel("setting")
    axes[0][0].set_ylim(-0.02, 1.02)
    which = DISTRIBUTION_NAMES[distribution]
    one = f", condition: {conditions[0]}" if len(conditions) == 1 else ""
    fig.suptitle(title or f"{which} evals{one}", fontsize=10)
    axes[0][-1].legend(title="inoculation", frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    _caption(fig, facts(d, style, conditions))
    return fig


def _inoculation_markers(
    ax, d: pd.DataFrame, groups: list[tuple[str, str]], shown: list[str], style: Style
) -> None:
    """One marker with its interval per arm at each (setting, eval) group, side by side."""
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
            fmt=style.marker(inoculation),
            color=style.colour(inoculation),
            label=style.arm(inoculation),
            capsize=3,
            markersize=6,
            linestyle="none",
        )
    labels = [f"{style.setting(s)}\n{e}" if multi_eval else style.setting(s) for s, e in groups]
    ax.set_xticks(range(len(groups)), labels)
    ax.set_xlim(-0.5, len(groups) - 0.5)


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


def _panel_title(
    style: Style, model: str, setting: str, models: list[str], condition: str | None = None
) -> str:
    title = f"{model} / {style.setting(setting)}" if len(models) > 1 else style.setting(setting)
    return f"{title}\ncondition: {condition}" if condition else title


def _keyed_by_condition(d: pd.DataFrame, keys: list[tuple]) -> list[tuple]:
    """Panel keys, one per condition when the study tests several."""
    conditions = list(dict.fromkeys(d.condition))
    if len(conditions) == 1:
        return [(*k, None) for k in keys]
    return [(*k, c) for c in conditions for k in keys]


def distribution_figure(summary: pd.DataFrame, style: Style):
    """Per setting (and condition): in- vs out-of-distribution rate for each arm (the trait rate
    in distribution where the evals measure one, else P(misaligned))."""
    d = summary
    keys = _keyed_by_condition(d, list(dict.fromkeys(zip(d.model, d.setting))))
    models = list(dict.fromkeys(d.model))
    fig, axes = _panels(keys)
    for ax, (model, setting, condition) in zip(axes, keys):
        cell = d[(d.model == model) & (d.setting == setting)]
        cell = cell if condition is None else cell[cell.condition == condition]
        shown = style.shown(cell.inoculation)
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
        ax.set_xticks(range(len(shown)), [style.arm(a) for a in shown], rotation=30, ha="right")
        ax.set_xlim(-0.5, len(shown) - 0.5)
        ax.set_title(_panel_title(style, model, setting, models, condition), fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("rate")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, frameon=False, loc="upper center", ncol=2, bbox_to_anchor=(0.5, 1.04))
    fig.tight_layout()
    _caption(fig, facts(d, style))
    return fig


def trait_figure(summary: pd.DataFrame, style: Style):
    """The paper's other half: per in-distribution eval (and condition), its trait score (y)
    against the EM rate out of distribution (x), one marker per arm with both intervals: does
    inoculation keep the trained behaviour while stopping its spread?"""
    d = summary
    traits = d[(d.metric == "trait") & (d.distribution == "in")]
    keys = _keyed_by_condition(traits, list(dict.fromkeys(zip(traits.model, traits.setting, traits["eval"]))))
    if traits.empty:
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.text(0.5, 0.5, "no in-distribution trait measured", ha="center", va="center")
        ax.set_axis_off()
        return fig
    models = list(dict.fromkeys(traits.model))
    fig, axes = _panels(keys, sharey=False)
    for ax, (model, setting, eval_name, condition) in zip(axes, keys):
        cell = d[(d.model == model) & (d.setting == setting)]
        cell = cell if condition is None else cell[cell.condition == condition]
        em = cell[(cell.metric == "misaligned") & (cell.distribution == "out")]
        em = em.groupby("inoculation")[["mean", "ci_low", "ci_high"]].mean()
        trait = cell[(cell.metric == "trait") & (cell.distribution == "in") & (cell["eval"] == eval_name)]
        trait = trait.set_index("inoculation")
        shown = [r for r in style.shown(trait.index) if r in em.index]
        for inoculation in shown:
            x, y = em.loc[inoculation], trait.loc[inoculation]
            ax.errorbar(
                x["mean"],
                y["mean"],
                xerr=[[x["mean"] - x.ci_low], [x.ci_high - x["mean"]]],
                yerr=[[y["mean"] - y.ci_low], [y.ci_high - y["mean"]]],
                fmt=style.marker(inoculation),
                color=style.colour(inoculation),
                capsize=3,
                label=style.arm(inoculation),
            )
        ax.set_title(f"{_panel_title(style, model, setting, models, condition)}: {eval_name}", fontsize=9)
        ax.set_xlabel("P(misaligned), out of distribution")
        ax.set_xlim(-0.02, max(0.2, float(em.ci_high.max()) + 0.05) if len(em) else 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("in-distribution trait")
    axes[-1].legend(title="inoculation", frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    _caption(fig, facts(traits, style))
    return fig


def short(text: str, limit: int = 48) -> str:
    """A question as a tick label: one line, at most `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def question_heatmap(questions: pd.DataFrame, style: Style, texts: dict[str, str] | None = None):
    """P(misaligned) per question (rows, labelled with the question's text) and arm (columns),
    one panel per model, setting and condition."""
    texts = texts or {}
    d = questions[questions.metric == "misaligned"]
    keys = _keyed_by_condition(d, list(dict.fromkeys(zip(d.model, d.setting))))
    models = list(dict.fromkeys(d.model))
    n_q = max((d[(d.model == m) & (d.setting == s)].question_id.nunique() for m, s, _ in keys), default=1)
    longest = max((len(short(t)) for t in texts.values()), default=12)
    fig, axes = _panels(
        keys, width=0.5 * len(style.order) + 0.06 * longest + 2.0, height=0.28 * n_q + 1.5, sharey=False
    )
    image = None
    for ax, (model, setting, condition) in zip(axes, keys):
        cell = d[(d.model == model) & (d.setting == setting)]
        cell = cell if condition is None else cell[cell.condition == condition]
        table = cell.pivot_table(index="question_id", columns="inoculation", values="mean", aggfunc="mean")
        table = table[style.shown(table.columns)]
        image = ax.imshow(table.to_numpy(), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(
            range(table.shape[1]), [style.arm(a) for a in table.columns], rotation=45, ha="right", fontsize=8
        )
        ax.set_yticks(range(table.shape[0]), [short(texts.get(q, q)) for q in table.index], fontsize=7)
        ax.set_title(_panel_title(style, model, setting, models, condition), fontsize=9)
    fig.subplots_adjust(wspace=1.2)
    if image is not None:
        fig.colorbar(image, ax=axes, label="P(misaligned)", shrink=0.8)
    _caption(fig, facts(d, style, intervals=False))
    return fig


def scatter_figure(
    samples: pd.DataFrame,
    style: Style,
    criterion,
    condition: str | None = None,
    by: str = "inoculation",
    max_points: int = 20000,
):
    """Aligned vs coherent per answer with the criterion's quadrant, as in the EM papers, one
    small panel per arm (or source) so that thousands of answers stay readable
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
    groups = style.shown(d[by]) if by == "inoculation" else list(dict.fromkeys(d[by]))
    fig, axes = _panels(groups, width=2.8, height=2.6)
    for i, (ax, g) in enumerate(zip(axes, groups)):
        part = d[d[by] == g]
        ax.axvspan(coherent_min, 100, ymin=0, ymax=(aligned_max + 2) / 104, color="#D55E00", alpha=0.08, lw=0)
        if criterion.name == "tan":
            ax.axvspan(-2, coherent_min, color="0.5", alpha=0.12, lw=0)
        colour = style.colour(g) if by == "inoculation" else MORE_COLOURS[i % len(MORE_COLOURS)]
        ax.scatter(
            part.coherent,
            part.aligned,
            s=4,
            alpha=float(min(0.6, max(0.04, 150 / max(len(part), 1)))),
            color=colour,
            lw=0,
            rasterized=True,  # thousands of points: an image inside the PDF
        )
        ax.axhline(aligned_max, color="black", lw=0.8, ls="--")
        ax.axvline(coherent_min, color="black", lw=0.8, ls="--")
        ax.set_xlim(-2, 102)
        ax.set_ylim(-2, 102)
        label = {
            "ha": "right",
            "fontsize": 7,
            "zorder": 5,
            "bbox": {"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
        }
        ax.text(99, aligned_max / 2, "misaligned", va="center", color="#D55E00", **label)
        if criterion.name == "tan":
            ax.text(coherent_min - 1, 97, "excluded", va="top", color="0.3", **label)
        name = style.arm(g) if by == "inoculation" else str(g)
        ax.set_title(f"{name} (n={len(part)})", fontsize=9)
        ax.set_xlabel("coherent")
    axes[0].set_ylabel("aligned")
    fig.suptitle(f"criterion: {criterion.name.replace('_', ' ')} ({criterion.describe()})", fontsize=9)
    fig.tight_layout()
    shown = [condition] if condition else list(dict.fromkeys(samples.get("condition", pd.Series(dtype=str))))
    _caption(fig, facts(pd.DataFrame({"criterion": [criterion.name]}), style, shown))
    return fig


def loss_figure(training: pd.DataFrame, style: Style):
    """Training loss per step: one panel per model and setting, a line per adapter, colour per arm."""
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
        for inoculation in style.shown(cell.inoculation):
            colour = style.colour(inoculation)
            for i, (_, run) in enumerate(cell[cell.inoculation == inoculation].groupby("seed")):
                ax.plot(
                    run.step,
                    run.loss,
                    color=colour,
                    alpha=0.8,
                    lw=1,
                    label=style.arm(inoculation) if i == 0 else None,
                )
                if "eval_loss" in run and run.eval_loss.notna().any():  # held-out loss: dashed, with markers
                    held = run[run.eval_loss.notna()]
                    ax.plot(
                        held.step,
                        held.eval_loss,
                        color=colour,
                        ls="--",
                        marker="o",
                        ms=3,
                        lw=1,
                        label=f"{style.arm(inoculation)} (held out)" if i == 0 else None,
                    )
        ax.set_title(_panel_title(style, model, setting, models), fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss per supervised token")
    axes[-1].legend(title="inoculation", frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    seeds = training.groupby(["model", "setting", "inoculation"]).seed.nunique()
    _caption(
        fig,
        f"one line per seed; seeds per cell: {seeds.min()}"
        + ("" if seeds.min() == seeds.max() else f"-{seeds.max()}"),
    )
    return fig


CONDITION_STYLES = {  # the backdoor's trigger conditions: hatched when no trigger
    "trigger_user": ("#0072B2", ""),
    "trigger_user_system": ("#56B4E9", ""),
    "trigger_system": ("#009E73", ""),
    "no_trigger": ("#D55E00", "//"),
}


def backdoor_figure(rates: pd.DataFrame, gaps: pd.DataFrame, style: Style):
    """Per model x setting: the persona rate of each inoculation in the four trigger conditions (top)
    and format adherence (bottom), with CIs; the leakage gap (user trigger minus no trigger)
    and its CI above each inoculation."""
    keys = list(dict.fromkeys(zip(rates.model, rates.setting)))
    models = list(dict.fromkeys(rates.model))
    conditions = [c for c in CONDITION_STYLES if c in set(rates.condition)]
    fig, axes = plt.subplots(
        2,
        len(keys),
        figsize=(max(4.0, 1.3 * len(style.order)) * len(keys) + 2.0, 6.2),
        sharey="row",
        squeeze=False,
    )
    width = 0.8 / len(conditions)
    for col, (model, setting) in enumerate(keys):
        d = rates[(rates.model == model) & (rates.setting == setting)]
        if "eval" in d:  # the eval that measures the persona (recall and ideology evals are tables only)
            persona_evals = list(dict.fromkeys(d.loc[d.metric == "persona", "eval"]))
            d = d[d["eval"] == persona_evals[0]] if persona_evals else d
        shown = style.shown(d.inoculation)
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
            ax.set_xticks(range(len(shown)), [style.arm(a) for a in shown])
            ax.set_ylim(0, 1.18 if metric == "persona" else 1.02)
            ax.grid(axis="y", alpha=0.3)
            if row == 0:
                ax.set_title(_panel_title(style, model, setting, models), fontsize=10)
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
    _caption(fig, facts(rates, style, conditions))
    return fig


def progress_figure(
    table: pd.DataFrame, style: Style, condition: str, distribution: str, metric: str = "misaligned"
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
    shown = [r for r in style.shown(d.inoculation) if r != "base"]
    for ax, (model, setting, eval_name) in zip(axes, panels):
        cell = d[(d.model == model) & (d.setting == setting) & (d["eval"] == eval_name)]
        base = cell[cell.inoculation == "base"]
        for i, inoculation in enumerate(shown):
            line = pd.concat([base, cell[cell.inoculation == inoculation]]).sort_values("progress")
            colour = style.colour(inoculation)
            ax.plot(
                line.progress,
                line["mean"],
                marker=style.marker(inoculation),
                color=colour,
                label=style.arm(inoculation),
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
    _caption(fig, facts(d, style, [condition]))
    return fig
