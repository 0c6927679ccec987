"""The inoculation transform: put a prompt into every training conversation.

A pure function over records: order and every other field are preserved; only
the messages change. Placement is a system message or a prefix/suffix of the
first user message.
"""

from __future__ import annotations

import copy
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
        raise ConversationError(f"placement {placement!r} needs a user message, and this conversation has none")
    content = out[first_user]["content"]
    out[first_user]["content"] = f"{prompt}\n\n{content}" if placement == "user_prefix" else f"{content}\n\n{prompt}"
    return out


def inoculate_records(
    records: Iterable[tuple[int, dict]],
    prompt: str | None,
    placement: str = "system",
    on_existing_system: str = "error",
    source: str = "<records>",
) -> Iterator[dict]:
    """Inoculate (line number, record) pairs; errors name `source` and the line."""
    for lineno, record in records:
        try:
            messages = check_conversation(record)
            new = apply_prompt(messages, prompt, placement, on_existing_system)
        except ConversationError as e:
            raise InputError(f"{source}:{lineno}: {e}") from None
        yield {**record, "messages": new}


def inoculate_file(
    in_path: Path,
    out_path: Path,
    prompt: str | None,
    placement: str = "system",
    on_existing_system: str = "error",
) -> int:
    """Write the inoculated copy of a chat JSONL file; nothing is written on error."""
    records = list(inoculate_records(iter_jsonl(in_path), prompt, placement, on_existing_system, str(in_path)))
    return write_jsonl(out_path, records)
