"""Prompt strings read from the published files at run time instead of copied into configs.

Where a setting needs an upstream string verbatim (a judge template, a trigger, a system
prompt), it may name it as `{external: PATH, key: dotted.key}`: PATH under
`external_data_dir`, a YAML or JSON file, and the key path inside it (list positions as
numbers). The study resolves every such reference once, when it is loaded, so a missing
file or key is a config error before any job runs, naming the setting file and its key.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from inoculate.io import read_yaml


@lru_cache(maxsize=32)
def parsed(path: str, mtime: float) -> Any:
    """A published file, parsed once per version (settings name the same file many times)."""
    return read_yaml(path)


class TextRefError(ValueError):
    """A text reference whose file, key or value is not there."""


def is_text_ref(value: Any) -> bool:
    return isinstance(value, dict) and set(value) in ({"external", "key"}, {"external", "lines"})


def lookup(data: Any, key: str) -> Any:
    """`data` followed along a dotted key path (`a.b.0.c`)."""
    for part in key.split("."):
        if isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            raise TextRefError(f"no key {part!r} (of {key!r})")
    return data


def resolve_text(ref: dict, external_dir: Path | str) -> str | list[str]:
    """The string (or list of strings) a reference names; TextRefError saying what is missing.

    `{external: FILE, key: a.b}` reads a YAML/JSON file; `{external: FILE.txt, lines: N}` the
    first N lines of a text file, one string each (Tan et al.'s paraphrase list)."""
    path = Path(external_dir) / ref["external"]
    if not path.exists():
        raise TextRefError(f"{path} does not exist (external_data_dir is {external_dir})")
    if "lines" in ref:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if len(lines) < int(ref["lines"]):
            raise TextRefError(f"{path}: {ref['lines']} lines asked for, {len(lines)} there")
        return lines[: int(ref["lines"])]
    value = lookup(parsed(str(path), path.stat().st_mtime), str(ref["key"]))
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)  # a copy: the parsed file is cached
    if not isinstance(value, str):
        raise TextRefError(f"{path}: key {ref['key']!r} holds {type(value).__name__}, not a string")
    return value


def resolve_all(data: Any, external_dir: Path | str, where: str = "") -> Any:
    """`data` with every text reference inside it replaced by its string; errors name the key."""
    if is_text_ref(data):
        try:
            return resolve_text(data, external_dir)
        except TextRefError as e:
            raise TextRefError(f"key '{where}': {e}") from None
    if isinstance(data, dict):
        return {k: resolve_all(v, external_dir, f"{where}.{k}" if where else str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [resolve_all(v, external_dir, f"{where}.{i}") for i, v in enumerate(data)]
    return data
