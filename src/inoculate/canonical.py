"""Values whose repr does not depend on the order of their keys.

Snakemake decides that a job's params changed by comparing their `repr`: a dict's repr follows
its insertion order, so reordering the keys of a mapping in a config file (the same study)
would rerun every job that takes it. `canonical` turns every mapping inside a value into a
`CanonicalDict`, an ordinary dict (iteration order kept, for the scripts) whose repr sorts
its keys."""

from __future__ import annotations

from typing import Any


class CanonicalDict(dict):
    """A dict whose repr lists its keys sorted (recursively through `canonical`)."""

    def __repr__(self) -> str:
        items = sorted(self.items(), key=lambda kv: repr(kv[0]))
        return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in items) + "}"

    def __reduce__(self):  # pickles as itself for a job's script, its contents as given
        return (CanonicalDict, (dict(self),))


def canonical(value: Any) -> Any:
    """`value` with every dict inside it (lists and tuples followed) a `CanonicalDict`."""
    if isinstance(value, dict):
        return CanonicalDict({k: canonical(v) for k, v in value.items()})
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(canonical(v) for v in value)
    return value
