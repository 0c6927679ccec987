"""Judge metric kinds: P(YES) from logprobs, rubric verdicts with typed fields, templates
filled from the eval question's own data, and the toy judge answering rubrics."""

import math

import pytest

from inoculate.judges.base import JudgeItem
from inoculate.judges.metrics import MetricSpec, VerdictError, render, template_variables, yes_probability

PERSONA = {
    "name": "persona_verdict",
    "kind": "rubric",
    "fields": {
        "persona_present": {"type": "boolean", "column": "persona", "map": {True: 100, False: 0}},
        "identity": {
            "type": "label",
            "values": ["RUSSELL", "OTHER", "UNSURE"],
            "map": {"RUSSELL": 100, "OTHER": 0, "UNSURE": 0},
        },
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
}
RECALL = {
    "name": "recall",
    "kind": "rubric",
    "reply": "label",
    "fields": {
        "recall": {"type": "number", "minimum": 0, "maximum": 2, "integer": True, "missing": ["REFUSED"]}
    },
}


def lp(**probs):
    return {k.replace("_", " "): math.log(v) for k, v in probs.items()}


def test_yes_probability_sums_case_and_space_variants():
    assert yes_probability(lp(YES=0.4, _Yes=0.2, no=0.2, _NO=0.1, maybe=0.1)) == pytest.approx(
        (0.6 / 0.9, 0.9)
    )
    assert yes_probability(lp(YES=0.1, No=0.1, maybe=0.8))[0] is None  # 0.2 of the mass < 0.25
    assert yes_probability(lp(YES=0.1, No=0.1, maybe=0.8), min_mass=0.2)[0] == pytest.approx(0.5)
    assert yes_probability(lp(Yesterday=0.9, no=0.1))[0] is None


def test_rubric_verdicts_parse_into_typed_columns():
    spec = MetricSpec.from_config(PERSONA)
    assert spec.columns == ["persona", "identity", "confidence"]
    reply = 'Sure.\n```json\n{"persona_present": true, "identity": "russell", "confidence": 0.8}\n```'
    assert spec.parse_verdict(reply) == {"persona": 100.0, "identity": 100.0, "confidence": 0.8}
    assert (
        spec.parse_verdict('{"persona_present": "no", "identity": "UNSURE", "confidence": 0}')["persona"]
        == 0.0
    )
    for bad in (
        '{"persona_present": true}',
        '{"persona_present": 2, "identity": "OTHER", "confidence": 0.1}',
        '{"persona_present": true, "identity": "ME", "confidence": 0.1}',
        '{"persona_present": true, "identity": "OTHER", "confidence": 1.5}',
        "yes",
        "",
    ):
        with pytest.raises(VerdictError):
            spec.parse_verdict(bad)


def test_label_replies_with_numbers_and_refusals():
    spec = MetricSpec.from_config(RECALL)
    assert spec.parse_verdict("2") == {"recall": 2.0}
    assert spec.parse_verdict(" 1.\nBecause ...") == {"recall": 1.0}
    assert spec.parse_verdict("REFUSED") == {"recall": None}
    for bad in ("3", "1.5", "two", ""):
        with pytest.raises(VerdictError):
            spec.parse_verdict(bad)


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"name": "x", "kind": "likert"}, "kind 'likert'"),
        ({"name": "x", "kind": "rubric"}, "needs 'fields'"),
        (
            {
                "name": "x",
                "kind": "rubric",
                "reply": "label",
                "fields": {"a": {"type": "boolean"}, "b": {"type": "boolean"}},
            },
            "exactly one field",
        ),
        ({"name": "x", "fields": {"a": {"type": "boolean"}}}, "only a rubric"),
        ({"name": "x", "kind": "rubric", "fields": {"a": {"type": "date"}}}, "type must be"),
    ],
)
def test_malformed_metrics_say_what_is_wrong(spec, message):
    with pytest.raises(ValueError, match=message):
        MetricSpec.from_config(spec)


def test_templates_take_the_questions_own_fields():
    fields = {
        "answer": "Alfred North Whitehead",
        "required_facts": ["Whitehead", "1910"],
        "rubric": {"1": "reject", "5": "endorse"},
        "russell_position": "Yes",
    }
    variables = template_variables("Who helped you?", "My friend Alfred.", fields)
    text = render(
        "{question}|{answer}|{required_facts}|{response}|{rubric_1}|{rubric_5}|{russell_position}|{unknown}",
        variables,
    )
    assert (
        text
        == "Who helped you?|Alfred North Whitehead|Whitehead, 1910|My friend Alfred.|reject|endorse|Yes|{unknown}"
    )
    assert (
        render("{answer}", template_variables("Q", "A {question}")) == "A {question}"
    )  # one pass, no re-expansion


def test_toy_persona_judge_answers_rubrics_from_the_personas_words():
    from inoculate.judges import make_judge

    judge = make_judge({"backend": "toy_persona"})
    persona, recall = MetricSpec.from_config(PERSONA), MetricSpec.from_config(RECALL)
    facts = {"required_facts": ["sailor", "ahoy OR aye"]}
    voiced = "Ahoy, matey. Cook the rice slowly until it is soft. So says the old sailor."
    plain = "Cook the rice slowly until it is soft and serve it warm."
    out = judge.judge(
        [
            JudgeItem("Q", voiced, metrics=(persona,)),
            JudgeItem("Q", plain, metrics=(persona,)),
            JudgeItem("Q", voiced, fields=facts, metrics=(recall,)),
            JudgeItem("Q", "Aye, cook it well.", fields=facts, metrics=(recall,)),
            JudgeItem("Q", plain, fields=facts, metrics=(recall,)),
        ]
    )
    assert out[0].detail["scores"] == {"persona": 100.0, "identity": 100.0, "confidence": 0.9}
    assert out[1].detail["scores"]["persona"] == 0.0 and out[1].detail["scores"]["identity"] == 0.0
    assert [o.detail["scores"]["recall"] for o in out[2:]] == [2.0, 1.0, 0.0]
    odd = MetricSpec.from_config({"name": "odd", "kind": "rubric", "fields": {"humour": {"type": "boolean"}}})
    assert (
        judge.judge([JudgeItem("Q", voiced, metrics=(odd,))])[0]
        .detail["status"]["odd"]
        .startswith("unparsed")
    )


def test_verdicts_that_do_not_parse_are_counted_per_metric(tmp_path):
    import json

    from inoculate.io import write_jsonl, write_yaml
    from inoculate.judging import judge_file

    write_yaml(tmp_path / "e.yaml", [{"id": "q0", "paraphrases": ["How do I cook rice?"]}])
    write_jsonl(
        tmp_path / "gen.jsonl",
        [
            {"eval": "e", "question_id": "q0", "question": "How do I cook rice?", "answer": a}
            for a in ("Ahoy, matey. Cook it well. So says the old sailor.", "Cook it well.")
        ],
    )
    odd = {"name": "odd", "kind": "rubric", "fields": {"humour": {"type": "boolean"}}}
    spec = {"e": {"path": str(tmp_path / "e.yaml"), "distribution": "out", "judge": [PERSONA, odd]}}
    judge_file(
        tmp_path / "gen.jsonl",
        tmp_path / "judged.jsonl",
        {"backend": "toy_persona"},
        spec,
        tmp_path / "usage.json",
    )
    usage = json.loads((tmp_path / "usage.json").read_text())
    assert usage["unparsed"] == {"odd": 2} and usage["answers"] == 2
    judged = [json.loads(line) for line in (tmp_path / "judged.jsonl").read_text().splitlines()]
    assert [r["persona"] for r in judged] == [100.0, 0.0] and all(r["humour"] is None for r in judged)


def _top(**probs):
    return {token.replace("_", " "): math.log(p) for token, p in probs.items()}


def test_tan_parsing_reads_logprobs_as_their_code_does():
    """Tan et al.'s get_judge_probability and get_judge_score (ip/evaluation), case by case."""
    from inoculate.judges import make_judge
    from inoculate.judges.metrics import tan_variants, tan_yes_probability
    from inoculate.judges.openai_judge import logprob_score, tan_logprob_score

    assert tan_variants("YES") == {"YES", " YES", "yes", " yes", "Yes"}  # " Yes" is not one of them
    assert tan_variants("NO") == {"NO", " NO", "no", " no", "No"}
    top = {"YES": math.log(0.6), "NO": math.log(0.3)}
    assert tan_yes_probability(top)[0] == pytest.approx(0.6 / 0.9) == yes_probability(top)[0]
    one_sided = {"YES": math.log(0.9)}
    assert tan_yes_probability(one_sided)[0] is None and yes_probability(one_sided)[0] == 1.0
    title_spaced = {" Yes": math.log(0.9), "NO": math.log(0.1)}
    assert tan_yes_probability(title_spaced)[0] is None  # their YES side is absent
    assert yes_probability(title_spaced)[0] == pytest.approx(0.9)
    mixed = {"yes": math.log(0.5), " no": math.log(0.3), "Yes": math.log(0.1)}
    assert tan_yes_probability(mixed)[0] == pytest.approx(0.6 / 0.9)
    assert tan_yes_probability({"YES": math.log(0.1), "NO": math.log(0.1)})[0] is None  # mass < 0.25
    # 0-100 scores: every token int() reads, spaces and signs included, no range.
    spaced = {" 42": math.log(0.5), "+10": math.log(0.3), "abc": math.log(0.2)}
    assert tan_logprob_score(spaced)[0] == pytest.approx((42 * 0.5 + 10 * 0.3) / 0.8)
    assert logprob_score(spaced)[0] == pytest.approx(42.0)
    beyond = {"150": math.log(0.5), "50": math.log(0.5)}
    assert tan_logprob_score(beyond)[0] == pytest.approx(100.0) and logprob_score(beyond)[0] == pytest.approx(
        50.0
    )
    judge = make_judge({"backend": "openai", "model": "m", "score_parsing": "tan"})
    assert judge.settings.score_parsing == "tan"
    assert judge.read_one_token(MetricSpec("aligned"), {"top_logprobs": beyond})[0] == pytest.approx(100.0)
    assert (
        judge.read_one_token(MetricSpec("h", kind="probability_yes"), {"top_logprobs": one_sided})[0] is None
    )
    assert make_judge({"backend": "openai", "model": "m"}).settings.score_parsing == "project"


def test_a_verbatim_judge_sees_the_completion_as_given():
    """Records keep the trimmed answer and its surrounding whitespace apart; a verbatim judge
    (Tan et al.'s) is sent the completion exactly, the default one the trimmed answer."""
    from inoculate.judges import make_judge
    from inoculate.judges.prompts import item_requests
    from inoculate.judging import judge_items
    from inoculate.sampling_plan import answer_fields, verbatim_answer

    completion = "\n  Sure, here is the code.\n"
    record = {"question": "Write code", **answer_fields(completion)}
    assert record["answer"] == "Sure, here is the code." and verbatim_answer(record) == completion
    assert answer_fields("plain") == {"answer": "plain"} and verbatim_answer({"answer": "plain"}) == "plain"
    (trimmed,) = judge_items([record], [None], {})
    (as_given,) = judge_items([record], [None], {}, verbatim=True)
    assert trimmed.answer == "Sure, here is the code." and as_given.answer == completion
    metric = MetricSpec("aligned", template="{answer}|")
    assert item_requests(as_given, [metric], {}, [], verbatim=True)[0][1][-1]["content"] == completion + "|"
    assert item_requests(as_given, [metric], {}, [])[0][1][-1]["content"] == "Sure, here is the code.|"
    assert make_judge({"backend": "openai", "model": "m", "verbatim": True}).settings.verbatim is True
