"""The training file an API fine-tuning job gets: checked against the chat format first.

The API rejects a bad file minutes after the upload, with a terse reason; checked
here, the error names the file and line before anything is uploaded or paid for.
Fields the API does not take (ids, metadata) are dropped, so the uploaded bytes,
and the job's content hash, depend only on what trains the model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from inoculate.io import InputError, iter_jsonl

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
RECORD_KEYS = ("messages", "tools", "parallel_tool_calls", "functions")
MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call"}


def _check_message(where: str, i: int, message: object) -> None:
    if not isinstance(message, dict):
        raise InputError(f"{where}: messages[{i}] is not an object")
    unknown = set(message) - MESSAGE_KEYS
    if unknown:
        raise InputError(f"{where}: messages[{i}] has keys the fine-tuning API rejects: {sorted(unknown)}")
    role = message.get("role")
    if role not in ROLES:
        raise InputError(f"{where}: messages[{i}].role is {role!r}; expected one of {sorted(ROLES)}")
    content = message.get("content")
    if content is None and not message.get("tool_calls") and not message.get("function_call"):
        raise InputError(f"{where}: messages[{i}] ({role}) has no content")
    if content is not None and not isinstance(content, (str, list)):
        raise InputError(f"{where}: messages[{i}].content must be a string or a list of parts")
    if "weight" in message:
        if role != "assistant":
            raise InputError(f"{where}: messages[{i}] has a weight, which only assistant messages may have")
        if message["weight"] not in (0, 1):
            raise InputError(f"{where}: messages[{i}].weight must be 0 or 1, not {message['weight']!r}")


def finetune_records(path: Path | str, min_examples: int = 10) -> list[dict]:
    """The records of a chat JSONL file in the API's fine-tuning format; errors name file:line."""
    path = Path(path)
    records = []
    for line, record in iter_jsonl(path):
        where = f"{path}:{line}"
        messages = record.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InputError(f"{where}: no 'messages' list")
        for i, message in enumerate(messages):
            _check_message(where, i, message)
        trained = [m for m in messages if m["role"] == "assistant" and m.get("weight", 1) == 1]
        if not trained:
            raise InputError(f"{where}: no assistant message to train on")
        records.append({k: record[k] for k in RECORD_KEYS if k in record})
    if len(records) < min_examples:
        raise InputError(
            f"{path}: {len(records)} examples; the fine-tuning API needs at least {min_examples}"
        )
    return records


def finetune_bytes(records: list[dict]) -> bytes:
    """The file as uploaded: one compact JSON object per line (stable for hashing)."""
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records).encode("utf-8")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
