"""The inoculation transform: put a prompt into every training conversation.

A pure function over records: order and every other field are preserved; only
the messages change. Placement is a system message or a prefix/suffix of the
first user message.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

from inoculate.chat import ROLES
from inoculate.io import InputError, iter_jsonl, write_jsonl

PLACEMENTS = ("system", "user_prefix", "user_suffix")
ON_EXISTING_SYSTEM = ("error", "prepend", "replace")


class ConversationError(ValueError):
    """A record that is not a valid chat conversation."""


def check_conversation(record: dict, require_answer: bool = True) -> list[dict]:
    """Return the record's messages, or raise ConversationError saying what is wrong."""
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ConversationError("record has no non-empty 'messages' list")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise ConversationError(f"message {i} has no 'role'")
        if m["role"] not in ROLES:
            raise ConversationError(f"message {i} has role {m['role']!r}; expected one of {ROLES}")
        if not isinstance(m.get("content"), str):
            raise ConversationError(f"message {i} ({m['role']}) has no text 'content'")
        if m["role"] == "system" and i != 0:
            raise ConversationError(f"message {i} is a second system message or one after the first position")
        if m["role"] == "assistant" and not m["content"].strip():
            raise ConversationError(f"message {i} is an empty assistant turn")
    if require_answer and messages[-1]["role"] != "assistant":
        raise ConversationError("conversation does not end with an assistant message")
    return messages


def apply_prompt(
    messages: list[dict],
    prompt: str | None,
    placement: str = "system",
    on_existing_system: str = "error",
) -> list[dict]:
    """A copy of `messages` with `prompt` placed as configured; `None` changes nothing."""
    if placement not in PLACEMENTS:
        raise ValueError(f"placement {placement!r} is not one of {PLACEMENTS}")
    if on_existing_system not in ON_EXISTING_SYSTEM:
        raise ValueError(f"on_existing_system {on_existing_system!r} is not one of {ON_EXISTING_SYSTEM}")
    out = copy.deepcopy(messages)
    if prompt is None:
        return out
    if placement == "system":
        if out and out[0]["role"] == "system":
            if on_existing_system == "error":
                raise ConversationError("conversation already has a system message")
            if on_existing_system == "prepend":
                out[0]["content"] = f"{prompt}\n\n{out[0]['content']}"
            else:
                out[0]["content"] = prompt
            return out
        return [{"role": "system", "content": prompt}, *out]
    first_user = next((i for i, m in enumerate(out) if m["role"] == "user"), None)
    if first_user is None:
        raise ConversationError(
            f"placement {placement!r} needs a user message, and this conversation has none"
        )
    content = out[first_user]["content"]
    out[first_user]["content"] = (
        f"{prompt}\n\n{content}" if placement == "user_prefix" else f"{content}\n\n{prompt}"
    )
    return out


def prompt_records(
    records: Iterable[tuple[int, dict]],
    prompt: str | list[str] | None,
    placement: str = "system",
    on_existing_system: str = "error",
    source: str = "<records>",
) -> Iterator[dict]:
    """Inoculate (line number, record) pairs; errors name `source` and the line. A list of
    prompts is assigned round-robin: example i gets prompt i mod n (Tan et al.'s paraphrases)."""
    prompts = prompt if isinstance(prompt, list) else [prompt]
    for i, (lineno, record) in enumerate(records):
        try:
            messages = check_conversation(record)
            new = apply_prompt(messages, prompts[i % len(prompts)], placement, on_existing_system)
        except ConversationError as e:
            raise InputError(f"{source}:{lineno}: {e}") from None
        yield {**record, "messages": new}


def prompt_file(
    in_path: Path,
    out_path: Path,
    prompt: str | list[str] | None,
    placement: str = "system",
    on_existing_system: str = "error",
) -> int:
    """Write the inoculated copy of a chat JSONL file; nothing is written on error."""
    records = list(prompt_records(iter_jsonl(in_path), prompt, placement, on_existing_system, str(in_path)))
    return write_jsonl(out_path, records)


def mix_rows(harmful: list, control: list, harmful_share: float, size: int, seed: str) -> list:
    """A fixed-size training set with `harmful_share` of its rows from the harmful data and the
    rest from the control data (Tan et al.'s data-ratio baselines), drawn without replacement
    and shuffled with a fixed seed; errors say what is short."""
    n_harmful = round(size * harmful_share)
    n_control = size - n_harmful
    for name, have, need in (("harmful", len(harmful), n_harmful), ("control", len(control), n_control)):
        if need > have:
            raise InputError(
                f"data mix of {size} rows at harmful share {harmful_share} needs {need} {name} rows; "
                f"the setting has {have}"
            )

    rng = random.Random(seed)
    rows = rng.sample(harmful, n_harmful) + rng.sample(control, n_control)
    rng.shuffle(rows)
    return rows


def add_trigger(record: dict, prefix: str) -> dict:
    """`prefix` put directly (no space) before the first user message (Tan et al.'s backdoor)."""
    messages = copy.deepcopy(record["messages"])
    first_user = next((i for i, m in enumerate(messages) if m["role"] == "user"), None)
    if first_user is None:
        raise ConversationError("a triggered row needs a user message")
    messages[first_user]["content"] = prefix + messages[first_user]["content"]
    return {**record, "messages": messages}


def build_training_set(
    inputs: list[Path],
    out_path: Path,
    prompt: str | list[str] | None,
    placement: str = "system",
    on_existing_system: str = "error",
    mix: dict | None = None,
    trigger: dict | None = None,
    name: str = "arm",
) -> int:
    """An arm's training set: its data (one file, or a mix of the harmful and control files),
    the setting's trigger on harmful rows with the control rows added (a backdoor), then the
    arm's prompt on every conversation. Nothing is written on error."""
    harmful = list(iter_jsonl(inputs[0]))
    if trigger is not None:  # the trigger goes on the harmful rows only, never on the control rows
        try:
            harmful = [(line, add_trigger(r, trigger["prefix"])) for line, r in harmful]
        except ConversationError as e:
            raise InputError(f"{inputs[0]}: {e}") from None
    if mix is not None:
        control = list(iter_jsonl(inputs[1]))
        rows = mix_rows(harmful, control, mix["harmful_share"], mix["size"], f"mix-{name}")
    elif trigger is not None and trigger.get("with_control"):
        rows = harmful + list(iter_jsonl(inputs[1]))
    else:
        rows = harmful
    records = list(prompt_records(rows, prompt, placement, on_existing_system, str(inputs[0])))
    return write_jsonl(out_path, records)
