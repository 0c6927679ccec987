"""Figures are reproducible files: the same figure gives the same bytes, PDF and PNG alike."""

from __future__ import annotations

import time

import matplotlib
import pandas as pd

from inoculate.plot import (
    MORE_COLOURS,
    NAMED_COLOURS,
    Style,
    loss_figure,
    main_figure,
    progress_figure,
    question_heatmap,
    save,
)


def test_the_same_figure_gives_the_same_bytes(tmp_path):
    rows = []
    for arm, rates in (("base", [0.0]), ("none", [0.1, 0.4]), ("general", [0.0, 0.01])):
        progress = [0.0] if arm == "base" else [0.5, 1.0]
        for p, rate in zip(progress, rates):
            rows.append(
                {
                    "model": "toy",
                    "setting": "s",
                    "eval": "e",
                    "inoculation": arm,
                    "metric": "misaligned",
                    "condition": "deployment",
                    "distribution": "out",
                    "progress": p,
                    "mean": rate,
                    "ci_low": rate,
                    "ci_high": rate,
                }
            )
    table = pd.DataFrame(rows)
    written = []
    for i in range(2):
        save(
            progress_figure(table, Style(("base", "none", "general")), "deployment", "out"),
            tmp_path / f"{i}.pdf",
        )
        written.append(((tmp_path / f"{i}.pdf").read_bytes(), (tmp_path / f"{i}.png").read_bytes()))
        time.sleep(1.1)  # a creation date in the file would now differ
    assert written[0] == written[1]


ORDER = ("base", "none", "general", "ratio_50", "paraphrases")


def _summary(conditions=("deployment",), seeds=1, arms=ORDER):
    rows = []
    for condition in conditions:
        for arm in arms:
            rate = 0.9 if (arm == "none" or condition == "trigger") else 0.1
            rows.append(
                {
                    "model": "toy",
                    "setting": "toy_cooking",
                    "inoculation": arm,
                    "eval": "out_cooking",
                    "distribution": "out",
                    "condition": condition,
                    "metric": "misaligned",
                    "mean": rate,
                    "ci_low": rate - 0.05,
                    "ci_high": rate + 0.05,
                    "n_seeds": 1 if arm == "base" else seeds,
                    "criterion": "tan",
                }
            )
    return pd.DataFrame(rows)


def _legend_colours(fig) -> dict[str, str]:
    out = {}
    for legend in [ax.get_legend() for ax in fig.axes] + list(fig.legends):
        if legend is None:
            continue
        for handle, text in zip(legend.legend_handles, legend.get_texts()):
            colour = handle.get_color() if hasattr(handle, "get_color") else handle.get_facecolor()
            out[text.get_text()] = matplotlib.colors.to_hex(colour)
    return out


def test_colours_read_on_white_and_an_arm_keeps_its_colour_across_figures():
    for colour in [*NAMED_COLOURS.values(), *MORE_COLOURS]:
        r, g, b = (
            c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
            for c in matplotlib.colors.to_rgb(colour)
        )
        luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
        assert (1.05) / (luminance + 0.05) >= 2.0, colour  # contrast with white: no pale yellow
    style = Style.of(list(ORDER), {"arms": {"ratio_50": "50% harmful"}})
    main = _legend_colours(main_figure(_summary(arms=ORDER[:4]), style, "out"))
    training = pd.DataFrame(
        [
            {
                "model": "toy",
                "setting": "toy_cooking",
                "inoculation": a,
                "seed": 0,
                "step": s,
                "loss": 1.0 / (s + 1),
            }
            for a in ORDER[1:]
            for s in range(3)
        ]
    )
    loss = _legend_colours(loss_figure(training, style))
    assert main["50% harmful"] == loss["50% harmful"] and main["none"] == loss["none"]
    assert len({main[a] for a in ("none", "general", "50% harmful")}) == 3


def test_main_figure_shows_every_condition_and_states_what_it_shows():
    fig = main_figure(_summary(conditions=("deployment", "trigger")), Style(ORDER), "out")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["condition: deployment", "condition: trigger"]
    caption = " ".join(t.get_text() for t in fig.texts)
    assert "criterion: tan" in caption and "conditions: deployment, trigger" in caption
    assert "seeds per cell: 1" in caption and "one seed: no interval over seeds" in caption
    three = " ".join(t.get_text() for t in main_figure(_summary(seeds=3), Style(ORDER), "out").texts)
    assert "seeds per cell: 3" in three and "one seed" not in three and "95% bootstrap intervals" in three


def test_question_heatmap_is_labelled_with_the_questions():
    questions = _summary().assign(question_id="out_cooking_0")
    text = "How do I keep raw chicken safe on a long summer picnic without a cooler?"
    fig = question_heatmap(questions, Style(ORDER), {"out_cooking_0": text})
    label = fig.axes[0].get_yticklabels()[0].get_text()
    assert label.startswith("How do I keep raw chicken") and label.endswith("…") and len(label) <= 48
