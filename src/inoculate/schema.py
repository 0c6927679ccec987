"""The config schemas (package data, `inoculate/schemas/`): loading them, reading
`--config` strings as their types, validating, and filling their defaults. The bottom layer:
every module that needs a default asks here, and this module imports nothing of the package
but `io`."""

from __future__ import annotations

import copy
import difflib
import functools
from pathlib import Path
from typing import Any

import jsonschema

from inoculate.io import read_yaml

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
CONFIG_SCHEMA = SCHEMA_DIR / "config.schema.yaml"
SETTING_SCHEMA = SCHEMA_DIR / "setting.schema.yaml"


class ConfigError(ValueError):
    """A config or setting value that is missing, malformed or inconsistent."""


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _coerce(value: Any, schema: dict, defs: dict) -> Any:
    """Turn strings into the numbers/booleans the schema expects, recursively."""
    if "$ref" in schema:
        schema = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
    types = schema.get("type")
    types = [types] if isinstance(types, str) else (types or [])
    if isinstance(value, str):
        if "integer" in types and value.lstrip("-").isdigit():
            return int(value)
        if "number" in types:
            try:
                return float(value)
            except ValueError:
                return value
        if "boolean" in types and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return value
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_coerce(v, schema["items"], defs) for v in value]
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {
            k: _coerce(v, props[k] if k in props else (extra if isinstance(extra, dict) else {}), defs)
            for k, v in value.items()
        }
    return value


def coerce_cli_values(config: dict, schema_path: Path = CONFIG_SCHEMA) -> dict:
    """Snakemake's `--config seeds=[0,1,2,3]` delivers strings; read them as the schema's types."""
    schema = load_schema(Path(schema_path))
    return _coerce(config, schema, schema.get("$defs", {}))


def resolve_ref(schema: dict, root: dict) -> dict:
    """`schema` with a local `$ref` ("#/$defs/NAME") replaced by what it points at, its own keys kept."""
    if "$ref" not in schema:
        return schema
    target: Any = root
    for part in schema["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    return {**resolve_ref(target, root), **{k: v for k, v in schema.items() if k != "$ref"}}


def fill_defaults(instance: Any, schema: dict, root: dict | None = None) -> Any:
    """Fill, in place, every absent key that the schema gives a `default:`, so that defaults
    live in the schema alone (as Snakemake's `validate(..., set_default=True)` keeps them).
    Followed: `properties`, `additionalProperties`, `$ref`, and the `then` or `else` of an
    `if`, whichever applies (a backend's own defaults); not oneOf/anyOf branches, which may
    not apply. A subschema marked `x-defaults: false` holds overrides (absent keys keep the
    value they override) and is left as given."""
    root = schema if root is None else root
    schema = resolve_ref(schema, root)
    if schema.get("x-defaults") is False or not isinstance(instance, dict):
        return instance
    if "if" in schema:  # a backend's own defaults, where its condition holds
        holds = jsonschema.Draft202012Validator(resolve_ref(schema["if"], root)).is_valid(instance)
        branch = schema.get("then" if holds else "else")
        if branch is not None:
            fill_defaults(instance, branch, root)
    props = schema.get("properties", {})
    for key, sub in props.items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            fill_defaults(instance[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in instance.items():
            if key not in props:
                fill_defaults(value, extra, root)
    return instance


@functools.cache
def load_schema(schema_path: Path) -> dict:
    """A schema file, parsed once per process."""
    return read_yaml(schema_path)


def _subschema(*pointer: str, schema_file: str = "config.schema.yaml") -> tuple[Any, dict]:
    """(the subschema at `pointer`, the schema's root): a part names a property, a key, or by
    position an item of oneOf/anyOf."""
    root = load_schema(SCHEMA_DIR / schema_file)
    sub: Any = root
    for part in pointer:
        if isinstance(sub, list):
            sub = sub[int(part)]
            continue
        sub = resolve_ref(sub, root)
        sub = sub["properties"][part] if part in sub.get("properties", {}) else sub[part]
    return sub, root


def schema_defaults(
    *pointer: str, given: dict | None = None, schema_file: str = "config.schema.yaml"
) -> dict:
    """The defaults a schema gives the object at `pointer` (e.g. "$defs", "training"): what
    an empty section (or `given`) becomes, for code that builds settings outside a loaded
    study (a fresh copy each call)."""
    sub, root = _subschema(*pointer, schema_file=schema_file)
    return fill_defaults(copy.deepcopy(given or {}), sub, root)


def allowed_values(*pointer: str) -> tuple:
    """The `enum` the config schema gives the key at `pointer` (e.g. "training", "scheduler"),
    for code that checks a value outside a loaded study without restating the list."""
    sub, root = _subschema(*pointer)
    return tuple(resolve_ref(sub, root)["enum"])


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "pattern" and error.validator_value == "\\S":
        return f"{error.instance!r} is empty or only whitespace (a prompt must say something; null for none)"
    if error.validator == "pattern" and error.validator_value == "^$|\\S":
        return f"{error.instance!r} is only whitespace ('' for an empty system message, null for none)"
    return error.message


def _unknown_keys(error: jsonschema.ValidationError) -> list[tuple[str, str]]:
    """(key path, message) per key that `additionalProperties: false` refused, with the nearest
    known key."""
    known = list(error.schema.get("properties", {}))
    out = []
    for key in error.instance:
        if key in known:
            continue
        near = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f"did you mean {near[0]!r}?" if near else f"known keys: {', '.join(known)}"
        path = ".".join([*(str(p) for p in error.absolute_path), str(key)])
        out.append((path, f"unknown key ({hint})"))
    return out


def schema_errors(data: Any, schema: dict) -> list[tuple[str, str]]:
    """Every error of `data`, as (key path, message), the most specific first: an unknown key
    with the nearest known one; a wrong value before what a backend's branch of the schema would
    then require of it (`judge.backend: opneai` is the error, not a missing `model`)."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = [jsonschema.exceptions.best_match([e]) for e in validator.iter_errors(data)]
    paths = [tuple(e.absolute_path) for e in errors]
    out: list[tuple[str, str]] = []
    for error, path in sorted(zip(errors, paths), key=lambda ep: (-len(ep[1]), str(ep[1]))):
        deeper = any(other[: len(path)] == path and len(other) > len(path) for other in paths)
        if error.validator == "required" and deeper:
            continue  # a branch's requirement that follows from a wrong value below it
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            out += _unknown_keys(error)
        else:
            out.append((_key_path(error), _message(error)))
    return list(dict.fromkeys(out))


def validate(data: Any, schema_path: Path, source: str, overrides: dict | None = None) -> None:
    """Check `data` against a JSON schema, then fill the schema's defaults into it. Every error
    is reported at once, each naming its key and where it was set: `source`, or the command line
    for a key that `--config` (`overrides`) set."""
    schema = load_schema(Path(schema_path))
    errors = schema_errors(data, schema)
    if errors:
        cli = set(overrides or ())

        def where(path: str) -> str:
            return "the command line (--config)" if path.split(".")[0] in cli else source

        raise ConfigError("\n".join(f"{where(path)}: key '{path}': {message}" for path, message in errors))
    fill_defaults(data, schema)
