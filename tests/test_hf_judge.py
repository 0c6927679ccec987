"""The local judge reads exact number probabilities from a causal LM (the toy model here)."""

from __future__ import annotations

import math

import pytest
import torch

from inoculate.chat import render, tokenize_text
from inoculate.judges import JudgeItem, make_judge


@pytest.fixture
def judge(toy_model, tmp_path):
    return make_judge(
        {
            "backend": "hf",
            "model": str(toy_model),
            "device": "cpu",
            "cache_dir": str(tmp_path / "cache"),
            "min_mass": 0.0,
        }
    )


def brute_force(judge, prompt: str, n: int) -> float:
    """log P(prompt's reply is exactly str(n)): the whole sequence scored from scratch."""
    model, tok = judge.load()
    text = render(tok, [{"role": "user", "content": prompt}], add_generation_prompt=True)
    context = tokenize_text(tok, text)
    full = tokenize_text(tok, text + str(n)) + [tok.eos_token_id]
    with torch.inference_mode():
        logits = torch.log_softmax(model(torch.tensor([full])).logits[0].float(), -1)
    return float(sum(logits[i - 1, full[i]] for i in range(len(context), len(full))))


def test_probabilities_match_scoring_each_number_from_scratch(judge):
    prompt = "Rate this answer from 0 to 100: Good question. Stay safe."
    probs = judge.number_probabilities(prompt)
    assert set(probs) == set(range(101))
    assert 0 < sum(probs.values()) <= 1 + 1e-6
    for n in (0, 7, 42, 100):
        assert math.log(probs[n]) == pytest.approx(brute_force(judge, prompt, n), abs=1e-3)


def test_judge_scores_and_caches(judge):
    items = [JudgeItem("How should I cook the rice?", "Cook the rice until it is hot.")]
    first = judge.judge(items)[0]
    assert first.aligned is not None and 0 <= first.aligned <= 100
    assert judge.calls == 2
    again = judge.judge(items)[0]
    assert again.aligned == first.aligned and judge.calls == 2 and judge.cache.hits == 2


def test_no_score_below_the_mass_threshold(toy_model, tmp_path):
    # The toy model never answers with a number, so its number mass is tiny.
    judge = make_judge(
        {"backend": "hf", "model": str(toy_model), "device": "cpu", "cache_dir": str(tmp_path)}
    )
    result = judge.judge([JudgeItem("Q?", "A.")])[0]
    assert result.aligned is None and result.label == "no_score"


def test_yes_probability_and_rubric_verdicts_from_a_local_model(judge):
    """P(YES) of a local judge: the exact probabilities of the six spellings of YES and NO as
    whole replies; a rubric verdict is the model's greedy reply, counted as unparsed when it is
    not one (the toy model writes advice, not verdicts)."""
    from inoculate.judges.hf_judge import YES_NO
    from inoculate.judges.metrics import MetricSpec

    yes = MetricSpec.from_config(
        {"name": "hardcoded", "kind": "probability_yes", "template": "Is it safe? {answer}"}
    )
    rubric = MetricSpec.from_config(
        {
            "name": "verdict",
            "kind": "rubric",
            "max_tokens": 12,
            "system": "Judge it.",
            "template": "Verdict on: {answer}",
            "fields": {"ok": {"type": "boolean"}},
        }
    )
    item = JudgeItem("Q", "Cook the rice until it is hot.", metrics=(yes, rubric))
    result = judge.judge([item])[0]
    probs = judge.reply_probabilities(
        [{"role": "user", "content": "Is it safe? Cook the rice until it is hot."}], list(YES_NO)
    )
    expected = sum(probs[r] for r in ("YES", "Yes", "yes")) / sum(probs.values())
    assert result.detail["scores"]["hardcoded"] == pytest.approx(expected)
    assert 0 < sum(probs.values()) < 1
    assert result.detail["scores"]["ok"] is None and result.detail["status"]["verdict"].startswith("unparsed")
    assert judge.calls == 2
    assert judge.judge([item])[0].detail == result.detail and judge.calls == 2  # both cached
