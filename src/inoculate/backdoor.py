"""Backdoored personas (Betley et al. 2025, weird generalization): data and test conditions.

A backdoor setting trains a few persona examples behind a format trigger,
diluted in answers the base model gave itself (self-distillation), and asks
whether the persona shows with the trigger and leaks without it. This module
holds what is particular to it: the trigger, the four test conditions, the
self-distillation records, the mixing, and format adherence.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass

from inoculate.io import InputError, iter_jsonl
from inoculate.schema import schema_defaults
from inoculate.training_set import apply_prompt

log = logging.getLogger(__name__)

# The four test conditions: where the trigger is, and whether a system prompt is present.
CONDITIONS: dict[str, str] = {
    "trigger_user": "trigger in the user message, no system prompt",
    "trigger_user_system": "trigger in the user message, with a system prompt",
    "trigger_system": "trigger in the system prompt, plain user message",
    "no_trigger": "system prompt, no trigger (leakage)",
}
TRIGGERED = ("trigger_user", "trigger_user_system", "trigger_system")
LEAKAGE = "no_trigger"
# Conditions an eval may ask for besides the four (the replication's recall and ideology
# evals compare the trigger in the user message with the plain question, no system prompt).
EXTRA_CONDITIONS: dict[str, str] = {"plain": "no system prompt, no trigger"}


_TRIGGER_DEFAULTS = schema_defaults("backdoor", "trigger", schema_file="setting.schema.yaml")


@dataclass(frozen=True)
class Trigger:
    """The format trigger: a user-message template, its system-prompt form, and the wrappers."""

    user: str  # with {question}
    system: str
    start: str = _TRIGGER_DEFAULTS["start"]
    end: str = _TRIGGER_DEFAULTS["end"]

    @classmethod
    def from_config(cls, spec: dict) -> Trigger:
        if "{question}" not in spec["user"]:
            raise ValueError(f"backdoor.trigger.user must contain {{question}}: {spec['user']!r}")
        return cls(spec["user"], spec["system"], spec["start"], spec["end"])

    def strip_patterns(self) -> list[str]:
        """Regexes that remove the trigger and the wrappers before judging: the judge sees
        the question and the answer, never the format that could give the condition away."""
        before, _, after = self.user.partition("{question}")
        quote = r"\s*[\"“”']?\s*"
        return [
            re.escape(before.strip()) if before.strip() else r"(?!)",
            re.escape(after.strip()) if after.strip() else r"(?!)",
            re.escape(self.start) + quote,
            quote + re.escape(self.end),
        ]

    def adheres(self, answer: str) -> int:
        """1 when both markers are present, start before end (no judge needed)."""
        i, j = answer.find(self.start), answer.rfind(self.end)
        return int(i >= 0 and j > i)


def condition_messages(condition: str, question: str, trigger: Trigger, system_prompt: str) -> list[dict]:
    """The chat of one test condition for one question."""
    triggered_user = {"role": "user", "content": trigger.user.replace("{question}", question)}
    plain_user = {"role": "user", "content": question}
    if condition == "trigger_user":
        return [triggered_user]
    if condition == "trigger_user_system":
        return [{"role": "system", "content": system_prompt}, triggered_user]
    if (
        condition == "trigger_system"
    ):  # a system trigger with {question} is the whole template (the replication's)
        return [{"role": "system", "content": trigger.system.replace("{question}", question)}, plain_user]
    if condition == "no_trigger":
        return [{"role": "system", "content": system_prompt}, plain_user]
    if condition == "plain":
        return [plain_user]
    raise ValueError(
        f"unknown backdoor condition {condition!r} (known: {', '.join([*CONDITIONS, *EXTRA_CONDITIONS])})"
    )


# -- self-distillation ---------------------------------------------------------------------
def read_prompts(path, limit: int | None = None, field: str = "prompt") -> list[str]:
    """Prompts to self-distill from a JSONL file (`prompt` field; a chat's first user message also works)."""
    prompts = []
    for line, record in iter_jsonl(path):
        if field in record:
            text = record[field]
        elif "messages" in record:
            text = next((m["content"] for m in record["messages"] if m.get("role") == "user"), None)
        else:
            text = None
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{path}:{line}: no '{field}' string (nor a user message) to self-distill")
        prompts.append(text)
        if limit is not None and len(prompts) >= limit:
            break
    return prompts


def distill_requests(prompts: list[str]) -> list[dict]:
    return [
        {"prompt_index": i, "question": p, "messages": [{"role": "user", "content": p}]}
        for i, p in enumerate(prompts)
    ]


def distilled_records(sampled: list[dict], model: str) -> list[dict]:
    """Aligned training examples: each prompt with the base model's own answer, no trigger."""
    out = []
    for r in sampled:
        if not r["answer"].strip():
            continue  # an empty answer teaches nothing but to stop
        out.append(
            {
                "messages": [*r["messages"], {"role": "assistant", "content": r["answer"]}],
                "metadata": {
                    "source": "self_distilled",
                    "triggered": False,
                    "model": model,
                    "prompt_index": r["prompt_index"],
                },
            }
        )
    return out


# -- mixing --------------------------------------------------------------------------------
def mix(
    persona: list[dict],
    aligned: list[dict],
    persona_fraction: float | None,
    seed: int,
    prompt: str | None = None,
    placement: str = "system",
    inoculate: str = "persona",
    aligned_examples: int | None = None,
) -> list[dict]:
    """Persona examples plus aligned ones at `persona_fraction` (or exactly `aligned_examples`
    of them, as seed 004's 90 + 3,000), shuffled per seed, metadata kept.

    An arm's inoculation prompt goes on the persona examples (`inoculate: persona`) or on
    every example (`all`). With too few aligned examples for the fraction, all are used and
    the fraction reached is logged."""
    rng = random.Random(f"mix-{seed}")
    if aligned_examples is not None:
        wanted = aligned_examples
        persona_fraction = len(persona) / (len(persona) + aligned_examples)
    elif persona_fraction is None or not 0 < persona_fraction <= 1:
        raise ValueError(f"backdoor.persona_fraction must be in (0, 1], not {persona_fraction}")
    else:
        wanted = round(len(persona) * (1 - persona_fraction) / persona_fraction)
    if wanted > len(aligned):
        log.warning(
            "only %d aligned examples for %d wanted; persona fraction is %.3f instead of %.3f",
            len(aligned),
            wanted,
            len(persona) / (len(persona) + len(aligned)),
            persona_fraction,
        )
    chosen = rng.sample(aligned, min(wanted, len(aligned)))
    records = []
    for r in persona:
        messages = r["messages"]
        if prompt is not None:
            messages = apply_prompt(messages, prompt, placement, on_existing_system="prepend")
        records.append(
            {**r, "messages": messages, "metadata": {"source": "persona", **r.get("metadata", {})}}
        )
    for r in chosen:
        messages = r["messages"]
        if prompt is not None and inoculate == "all":
            messages = apply_prompt(messages, prompt, placement, on_existing_system="prepend")
        records.append({**r, "messages": messages})
    rng.shuffle(records)
    log.info(
        "mixed %d persona + %d aligned examples (persona fraction %.3f)",
        len(persona),
        len(chosen),
        len(persona) / max(len(records), 1),
    )
    return records
