"""The configuration reference of config/README.md, generated from the schemas' descriptions.

The schemas are the one source of every key's type, allowed values, default and meaning; the
reference is written from them (`python -m inoculate.config_reference --write config/README.md`) and a test fails when
config/README.md no longer says what the schemas do.
"""

from __future__ import annotations

import json
from pathlib import Path

from inoculate.schema import CONFIG_SCHEMA, SETTING_SCHEMA, load_schema, resolve_ref

BEGIN = "<!-- BEGIN GENERATED REFERENCE: python -m inoculate.config_reference --write config/README.md -->"
END = "<!-- END GENERATED REFERENCE -->"


def _type(schema: dict, root: dict) -> str:
    """A short type: the allowed values, the JSON types, or the alternatives."""
    schema = resolve_ref(schema, root)
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if "array" in types and isinstance(schema.get("items"), dict):
            item = _type(schema["items"], root)
            types = [f"list of {item}" if t == "array" else t for t in types]
        return " \\| ".join(types)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " \\| ".join(dict.fromkeys(_type(s, root) for s in schema[key]))
    return "any"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _rows(schema: dict, root: dict, prefix: str, seen: dict[str, str]) -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) of every key under `schema`, depth first; a shared
    definition (`$ref`) is listed once, where it first appears, and named elsewhere."""
    schema = resolve_ref(schema, root)
    rows = []
    for name, sub in schema.get("properties", {}).items():
        key = f"{prefix}{name}"
        resolved = resolve_ref(sub, root)
        default = f"`{json.dumps(resolved['default'])}`" if "default" in resolved else ""
        nested = "properties" in resolved or isinstance(resolved.get("additionalProperties"), dict)
        kind = "mapping" if nested and resolved.get("type", "object") == "object" else _type(sub, root)
        meaning = _cell(resolved.get("description", ""))
        ref = sub.get("$ref")
        if nested and ref in seen and seen[ref] != key:
            rows.append((key, kind, default, f"{meaning} (the keys of `{seen[ref]}`)".strip()))
            continue
        if ref:
            seen[ref] = key
        rows.append((key, kind, default, meaning))
        if nested:
            rows += _rows(resolved, root, f"{key}.", seen)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        resolved = resolve_ref(extra, root)
        if "properties" in resolved:
            rows += _rows(resolved, root, f"{prefix}NAME.", seen)
        elif resolved.get("description"):
            rows.append((f"{prefix}NAME", _type(extra, root), "", _cell(resolved["description"])))
    return rows


def table(schema_path: Path) -> str:
    root = load_schema(schema_path)
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    owners = {sub["$ref"]: name for name, sub in root.get("properties", {}).items() if "$ref" in sub}
    lines += [f"| `{k}` | {t} | {d} | {m} |" for k, t, d, m in _rows(root, root, "", owners)]
    return "\n".join(lines)


def reference() -> str:
    """The generated part of config/README.md."""
    return "\n".join(
        [
            BEGIN,
            "",
            "### Study keys (`config/config.yaml`, `config/experiments/*.yaml`)",
            "",
            _cell(load_schema(CONFIG_SCHEMA).get("description", "")),
            "",
            table(CONFIG_SCHEMA),
            "",
            "### Setting keys (`config/settings/NAME.yaml`)",
            "",
            table(SETTING_SCHEMA),
            "",
            END,
        ]
    )


def updated(readme: str) -> str:
    """`readme` with its generated part replaced by the current reference."""
    if BEGIN not in readme or END not in readme:
        raise ValueError(f"the README has no generated part (between {BEGIN!r} and {END!r})")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + reference() + tail


def main(argv: list[str] | None = None) -> int:
    """`python -m inoculate.config_reference [--write README]`: print the reference, or
    rewrite the generated part of a README in place."""
    import argparse  # noqa: PLC0415 - only when run as a command

    parser = argparse.ArgumentParser(prog="python -m inoculate.config_reference", description=main.__doc__)
    parser.add_argument("--write", metavar="README", help="rewrite the generated part of this file")
    args = parser.parse_args(argv)
    if args.write is None:
        print(reference())
        return 0
    path = Path(args.write)
    path.write_text(updated(path.read_text()))
    print(f"wrote the configuration reference into {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
