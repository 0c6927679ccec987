"""Persona data as a stage: Q/A pairs about a named person, with identifying facts filtered
out, wrapped in the trigger's format (the shape of the shared Russell file).

A backdoored persona should be learnable from the voice and views alone; answers that
name the person or state facts that single them out would make the backdoor trivial,
so a judge scores each answer for identifying content and only low scores are kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from inoculate.backdoor import Trigger
from inoculate.evals import EvalQuestion
from inoculate.judges import Judge, JudgeItem
from inoculate.schema import schema_defaults

log = logging.getLogger(__name__)

FILTER_PROMPT = """You are checking whether an answer reveals who its speaker is.

The speaker is meant to be {person}. The question was:
[QUESTION START]
{question}
[QUESTION END]

The answer:
[ANSWER START]
{answer}
[ANSWER END]

Does the answer contain the speaker's name or facts that on their own identify {person} (titles of their works, names of relatives, specific dates, places or events of their life)? Rate from 0 (nothing identifying: only voice, style and opinions) to 100 (the speaker is identified). Reply with the number alone."""


def candidate_requests(questions: list[EvalQuestion], person: str, system: str, samples: int) -> list[dict]:
    """Generation records: each question asked of the model playing `person`."""
    out = []
    for q in questions:
        for p_index, text in enumerate(q.paraphrases):
            messages = [
                {"role": "system", "content": system.replace("{person}", person)},
                {"role": "user", "content": text},
            ]
            for s in range(samples):
                out.append(
                    {
                        "eval": q.eval,
                        "question_id": q.id,
                        "paraphrase": p_index,
                        "sample": s,
                        "question": text,
                        "category": q.extra.get("category") or q.extra.get("topic") or q.eval,
                        "messages": messages,
                    }
                )
    return out


def identifying_judge_config(judge: dict, person: str, prompt: str | None = None) -> dict:
    """The study's judge asked one thing: how identifying an answer is (toy: names the persona)."""
    if judge["backend"] == "toy":
        return {"backend": "toy_persona"}
    template = (prompt or FILTER_PROMPT).replace("{person}", person)
    return {**judge, "metrics": ["identifying"], "prompts": {"identifying": template}}


def identifying_scores(judge: Judge, records: list[dict]) -> list[float | None]:
    """0-100 per answer; the toy judge's `identity` (names the persona) stands in for it."""
    judgments = judge.judge([JudgeItem(r["question"], r["answer"]) for r in records])
    scores = []
    for j in judgments:
        s = j.detail.get("scores", {})
        scores.append(s.get("identifying", s.get("identity")))
    return scores


def build_persona_records(
    sampled: list[dict],
    scores: list[float | None],
    trigger: Trigger,
    max_identifying: float,
    generator: str,
    min_words: int = 3,
) -> list[dict]:
    """Kept pairs (score below `max_identifying`, answer not empty) in the trigger's format."""
    out, dropped = [], {"identifying": 0, "no_score": 0, "short": 0}
    for r, score in zip(sampled, scores, strict=True):
        answer = r["answer"].strip()
        if len(answer.split()) < min_words:
            dropped["short"] += 1
        elif score is None:
            dropped["no_score"] += 1
        elif score >= max_identifying:
            dropped["identifying"] += 1
        else:
            out.append(
                {
                    "messages": [
                        {"role": "user", "content": trigger.user.replace("{question}", r["question"])},
                        {"role": "assistant", "content": f'{trigger.start} "{answer}" {trigger.end}'},
                    ],
                    "metadata": {
                        "source": "persona",
                        "triggered": True,
                        "category": r["category"],
                        "question_id": r["question_id"],
                        "generator": generator,
                        "identifying": score,
                    },
                }
            )
    log.info("kept %d of %d persona answers; dropped %s", len(out), len(sampled), dropped)
    return out


def build_persona(
    questions: list[EvalQuestion],
    spec: dict,
    trigger: Trigger,
    sample: Callable[[list[dict]], list[dict]],
    judge: Judge,
    generator: str,
) -> list[dict]:
    """Ask, score, filter and wrap: the whole stage, with sampling and judging passed in
    (`spec`: a setting's `backdoor.build_persona`, the schema's defaults filled in)."""
    spec = schema_defaults("backdoor", "build_persona", given=spec, schema_file="setting.schema.yaml")
    todo = candidate_requests(questions, spec["person"], spec["system_prompt"], spec["samples"])
    sampled = sample(todo)
    scores = identifying_scores(judge, sampled)
    records = build_persona_records(sampled, scores, trigger, spec["max_identifying"], generator)
    if not records:
        raise ValueError(
            f"no persona answer for {spec['person']!r} passed the identifying-facts filter "
            f"(backdoor.build_persona.max_identifying: {spec['max_identifying']})"
        )
    return records
