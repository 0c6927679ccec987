"""Atomic file output and line-checked input.

Every output is written to a temporary sibling and renamed into place, so a job
that dies leaves either the old file or none, never half a file. Input errors
name the file and line.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml


class InputError(ValueError):
    """Bad input data; the message names the file (and line where there is one)."""


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _read_umask()


def as_umask_allows(path: Path | str, directory: bool = False) -> None:
    """Give a file or folder made by mkstemp/mkdtemp (always 0600/0700) the permissions the
    process umask allows, as `open` and `mkdir` would: results and caches shared by a group on
    a cluster stay readable by it."""
    os.chmod(path, (0o777 if directory else 0o666) & ~UMASK)


def readable_as_umask_allows(folder: Path | str) -> None:
    """Give every file and folder under `folder` the permissions the umask allows: libraries
    that write weights (safetensors: always 0600) would leave them unreadable to the group a
    results folder is shared with."""
    for path in [Path(folder), *Path(folder).rglob("*")]:
        if not path.is_symlink():
            as_umask_allows(path, directory=path.is_dir())


def remove_orphans(path: Path) -> None:
    """Temporary siblings of `path` left by a job killed while writing it (`.NAME.*.tmp`):
    the job that writes `path` again removes them, so nothing is left for good."""
    for orphan in path.parent.glob(f".{path.name}.*.tmp"):
        if orphan.is_dir() and not orphan.is_symlink():
            shutil.rmtree(orphan, ignore_errors=True)
        else:
            orphan.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it into place on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    as_umask_allows(tmp)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """Yield a temporary directory next to `path`; move it into place on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    as_umask_allows(tmp, directory=True)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path | str, obj: Any, indent: int | None = 2) -> None:
    """`obj` as JSON, atomically (`indent=None`: one line, for the many small cache entries)."""
    write_text(path, json.dumps(obj, indent=indent, sort_keys=False, default=str) + "\n")


def write_csv(path: Path | str, table: Any) -> None:
    """A pandas DataFrame as CSV without its index, atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def write_yaml(path: Path | str, obj: Any) -> None:
    write_text(path, yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))


def write_jsonl(path: Path | str, records: Iterable[dict]) -> int:
    """Write records one per line; returns how many."""
    n = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n


def iter_jsonl(path: Path | str) -> Iterator[tuple[int, dict]]:
    """Yield (line number, record); blank lines are skipped, anything else must be an object."""
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            yield lineno, record


def read_jsonl(path: Path | str) -> list[dict]:
    return [record for _, record in iter_jsonl(path)]


MAX_ALIAS_EXPANSION = 10  # a file's aliases may expand it to at most this many times its text


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (it keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise InputError(
                    f"line {line}: key {key!r} is given twice in one mapping (first on line {seen[key]})"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping)


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Characters of scalar text the node holds once its aliases are expanded (each node counted
    once per use, computed once per node)."""
    if id(node) in memo:
        return memo[id(node)]
    if isinstance(node, yaml.ScalarNode):
        size = len(str(node.value)) + 1
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo) for child in node.value)
    else:
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[id(node)] = size
    return size


def read_yaml(path: Path | str, bound_aliases: bool = False) -> Any:
    """A YAML (or JSON) file, read strictly: UTF-8, no key twice in a mapping, and (a config file:
    `bound_aliases`) aliases that expand it to at most MAX_ALIAS_EXPANSION times its text; a
    published eval file may alias its judge prompts freely. Errors name the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8") from None
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if (
            bound_aliases
            and "*" in text
            and _expanded_size(node, {}) > MAX_ALIAS_EXPANSION * max(len(text), 1)
        ):
            raise InputError(
                f"{path}: its aliases expand it to more than {MAX_ALIAS_EXPANSION} times its text; "
                "write the values out, or alias less"
            )
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f":{mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}{where}: not valid YAML ({e.problem or e})") from None
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not valid YAML ({e})") from None
    except InputError as e:
        if str(e).startswith(str(path)):
            raise
        raise InputError(f"{path}: {e}") from None
    finally:
        loader.dispose()
