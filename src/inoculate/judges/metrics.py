"""What a judge is asked, metric by metric, and how its reply becomes numbers.

Three kinds, each read the same way by every backend (OpenAI-compatible, local HF, toy):

- `score_0_100`: one token; the probability-weighted mean of the integer tokens 0..100
  among the top logprobs (Betley et al., Model Organisms). Column: the metric's name.
- `probability_yes`: one token; P(YES) / (P(YES) + P(NO)), case and space variants summed
  (Tan et al.'s YES/NO judges). Column: the metric's name, 0..1.
- `rubric`: a short reply read as a JSON verdict with named fields (booleans, labels,
  numbers), or as one label (`reply: label`, e.g. `0`/`1`/`2`/`REFUSED`). Each field
  becomes a column; a reply that does not parse is counted, never guessed.

A metric is configured as a name (a 0-100 score with the prompt of that name) or as a
mapping with `kind`, `template` (placeholders `{question}`, `{answer}`, `{response}`, and
the eval question's own fields such as `{required_facts}` or `{rubric_1}`), optional
`system`, `model` (with its `price`) and, for rubrics, `reply`, `fields` and `max_tokens`.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from inoculate.schema import schema_defaults

KINDS = ("score_0_100", "probability_yes", "rubric")
FIELD_TYPES = ("boolean", "label", "number")
ONE_TOKEN = {"max_tokens": 1, "temperature": 0, "top_logprobs": 20}
_TRUE, _FALSE = {"true", "yes", "1"}, {"false", "no", "0"}


class VerdictError(ValueError):
    """A rubric reply that does not give every field a valid value."""


@dataclass(frozen=True)
class FieldSpec:
    """One field of a rubric verdict and the column it fills.

    `map` turns a label or boolean into a number (e.g. RUSSELL -> 100); `missing` lists
    replies that mean "no score" on purpose (e.g. REFUSED): counted apart from parse failures."""

    name: str
    type: str
    values: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    missing: tuple[str, ...] = ()
    column: str | None = None
    map: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_config(cls, name: str, spec: dict) -> FieldSpec:
        _refuse_unknown(spec, FIELD_KEYS, f"rubric field {name!r}")
        if spec.get("type") not in FIELD_TYPES:
            raise ValueError(f"rubric field {name!r}: type must be one of {', '.join(FIELD_TYPES)}")
        return cls(
            name,
            spec["type"],
            tuple(map(str, spec.get("values", ()))),
            spec.get("minimum"),
            spec.get("maximum"),
            bool(spec.get("integer", False)),
            tuple(map(str, spec.get("missing", ()))),
            spec.get("column"),
            {
                str(k).lower() if isinstance(k, bool) else str(k): float(v)
                for k, v in (spec.get("map") or {}).items()
            },
        )

    @property
    def output(self) -> str:
        return self.column or self.name

    def parse(self, value: Any) -> Any:
        """The field's value as a column holds it; None for a `missing` reply; VerdictError otherwise."""
        text = str(value).strip().strip("\"'`.").strip()
        if text.upper() in {m.upper() for m in self.missing}:
            return None
        if self.type == "boolean":
            if isinstance(value, bool):
                flag = value
            elif text.lower() in _TRUE | _FALSE:
                flag = text.lower() in _TRUE
            else:
                raise VerdictError(f"{self.name}: {value!r} is not a boolean")
            key = str(flag).lower()
            return self.map.get(key, 1.0 if flag else 0.0)
        if self.type == "label":
            match = next((v for v in self.values if v.upper() == text.upper()), None)
            if match is None:
                raise VerdictError(f"{self.name}: {value!r} is not one of {', '.join(self.values)}")
            return self.map.get(match, match) if self.map else match
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            raise VerdictError(f"{self.name}: {value!r} is not a number") from None
        if math.isnan(number) or (self.integer and number != int(number)):
            raise VerdictError(
                f"{self.name}: {value!r} is not {'an integer' if self.integer else 'a number'}"
            )
        if (self.minimum is not None and number < self.minimum) or (
            self.maximum is not None and number > self.maximum
        ):
            raise VerdictError(f"{self.name}: {number:g} is outside [{self.minimum}, {self.maximum}]")
        return number


METRIC_KEYS = ("name", "kind", "template", "system", "model", "price", "reply", "fields", "max_tokens")
FIELD_KEYS = ("type", "values", "minimum", "maximum", "integer", "missing", "column", "map")


def _refuse_unknown(spec: dict, known: tuple[str, ...], what: str) -> None:
    """A mistyped key (`tempalte:`) would be dropped and the default used: an error instead."""
    for key in spec:
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f" (known: {', '.join(known)})"
            raise ValueError(f"{what}: unknown key {key!r}{hint}")


# A metric mapping's defaults are the setting schema's (`$defs.metric`, its mapping form).
_DEFAULTS = schema_defaults("$defs", "metric", "oneOf", "1", schema_file="setting.schema.yaml")


@dataclass(frozen=True)
class MetricSpec:
    """One question put to the judge about an answer, and how the reply is scored."""

    name: str
    kind: str = _DEFAULTS["kind"]
    template: str | None = None  # None: the eval file's judge prompt of this name, else the project default
    system: str | None = None
    model: str | None = None  # None: the judge's model
    price: dict | None = None  # USD per million input / output tokens of `model` (None: the judge's)
    reply: str = _DEFAULTS["reply"]  # rubric: a JSON object, or one `label`
    fields: tuple[FieldSpec, ...] = ()
    max_tokens: int = _DEFAULTS["max_tokens"]  # rubric replies

    @classmethod
    def from_config(cls, spec: str | dict) -> MetricSpec:
        if isinstance(spec, str):
            return cls(spec)
        name = spec.get("name")
        if not name:
            raise ValueError(f"judge metric {spec!r}: 'name' is required")
        _refuse_unknown(spec, METRIC_KEYS, f"judge metric {name!r}")
        spec = {**_DEFAULTS, **spec}
        kind = spec["kind"]
        if kind not in KINDS:
            raise ValueError(f"judge metric {name!r}: kind {kind!r} is not one of {', '.join(KINDS)}")
        fields = tuple(FieldSpec.from_config(k, v) for k, v in (spec.get("fields") or {}).items())
        reply = spec["reply"]
        if kind == "rubric":
            if not fields:
                raise ValueError(f"judge metric {name!r}: a rubric needs 'fields'")
            if reply not in ("json", "label"):
                raise ValueError(f"judge metric {name!r}: reply must be json or label")
            if reply == "label" and len(fields) != 1:
                raise ValueError(f"judge metric {name!r}: a label reply fills exactly one field")
        elif fields:
            raise ValueError(f"judge metric {name!r}: only a rubric has fields")
        return cls(
            name,
            kind,
            spec.get("template"),
            spec.get("system"),
            spec.get("model"),
            spec.get("price"),
            reply,
            fields,
            int(spec["max_tokens"]),
        )

    @property
    def columns(self) -> list[str]:
        """The columns of a judged record that this metric fills."""
        return [f.output for f in self.fields] if self.kind == "rubric" else [self.name]

    def params(self) -> dict:
        """Sampling parameters of the judge call."""
        if self.kind == "rubric":
            return {"max_tokens": self.max_tokens, "temperature": 0}
        return dict(ONE_TOKEN)

    def parse_verdict(self, text: str) -> dict[str, Any]:
        """Column -> value of a rubric reply; VerdictError when it does not parse."""
        if self.reply == "label":
            only = self.fields[0]
            return {only.output: only.parse(_first_line(text))}
        data = _json_object(text)
        out = {}
        for f in self.fields:
            if f.name not in data:
                raise VerdictError(f"no field {f.name!r} in the verdict")
            out[f.output] = f.parse(data[f.name])
        return out

    def empty(self) -> dict[str, None]:
        return dict.fromkeys(self.columns)


def _first_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    if not lines:
        raise VerdictError("empty reply")
    return lines[0]


def _json_object(text: str) -> dict:
    """The first JSON object in a reply (code fences and surrounding words tolerated)."""
    text = (text or "").strip()
    fenced = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", text, re.DOTALL)
    candidate = fenced[1] if fenced else text[text.find("{") : text.rfind("}") + 1] if "{" in text else ""
    try:
        data = json.loads(candidate)
    except json.JSONDecodeError:
        raise VerdictError(f"not a JSON object: {text[:80]!r}") from None
    if not isinstance(data, dict):
        raise VerdictError(f"not a JSON object: {text[:80]!r}")
    return data


def yes_probability(top_logprobs: dict[str, float], min_mass: float = 0.25) -> tuple[float | None, float]:
    """(P(YES) / (P(YES) + P(NO)), mass) over tokens that read yes or no in any case or spacing;
    no score when the two hold less than `min_mass` of the probability."""
    yes = no = 0.0
    for token, logprob in top_logprobs.items():
        word = token.strip().lower()
        if word == "yes":
            yes += math.exp(logprob)
        elif word == "no":
            no += math.exp(logprob)
    mass = yes + no
    if mass < min_mass or mass == 0:
        return None, mass
    return yes / mass, mass


def tan_variants(token: str) -> set[str]:
    """The spellings Tan et al.'s `get_judge_probability` counts as `token`: with and without a
    leading space, upper, lower and capitalised (so " Yes" is not one of YES's)."""
    tokens = {token, token[1:] if token.startswith(" ") else " " + token}
    return (
        tokens | {t.upper() for t in tokens} | {t.lower() for t in tokens} | {t.capitalize() for t in tokens}
    )


def tan_yes_probability(top_logprobs: dict[str, float], min_mass: float = 0.25) -> tuple[float | None, float]:
    """(P(YES) / (P(YES) + P(NO)), mass) as Tan et al.'s `get_judge_probability`: their exact
    spellings (`tan_variants`); no score below `min_mass`, nor when either side is absent."""
    probs = {token: math.exp(logprob) for token, logprob in top_logprobs.items()}
    yes = sum(probs.get(t, 0.0) for t in tan_variants("YES"))
    no = sum(probs.get(t, 0.0) for t in tan_variants("NO"))
    mass = yes + no
    if mass < min_mass or yes == 0 or no == 0:
        return None, mass
    return yes / mass, mass


def template_variables(question: str, answer: str, fields: dict | None = None) -> dict[str, str]:
    """What a judge template may name: `{question}` (also `{prompt}`), the model's answer as
    `{answer}`, `{response}` and `{completion}`, and the eval question's own fields; a question field named
    `answer` (a reference answer, as recall questions have) takes `{answer}`, the model's
    answer then being `{response}`. Lists are joined with ", "; a `rubric` mapping gives
    `{rubric_1}`, `{rubric_2}`, ..."""
    out = {
        "question": question,
        "prompt": question,
        "answer": answer,
        "response": answer,
        "completion": answer,
    }
    for key, value in (fields or {}).items():
        if isinstance(value, dict):
            out.update({f"{key}_{k}": str(v) for k, v in value.items()})
            continue
        out[key] = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return out


def render(template: str, variables: dict[str, str]) -> str:
    """Fill `{name}` placeholders that `variables` holds; other braces are left alone."""
    return re.sub(r"\{(\w+)\}", lambda m: variables.get(m[1], m[0]), template)
