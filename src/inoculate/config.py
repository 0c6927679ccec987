"""Loading a study: the config and its settings validated against the schemas, the schemas'
defaults filled in, and every cross-reference checked, errors naming the file and the key.
What the loaded study answers is `inoculate.study`."""

from __future__ import annotations

import copy
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema

from inoculate.io import read_yaml

if TYPE_CHECKING:
    from inoculate.study import Study

BASE_ARM = "base"
ARCHIVE_SUFFIX = ".zip.enc"
DEFAULT_SCHEMA_DIR = Path(__file__).resolve().parents[2] / "workflow" / "schemas"


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


def coerce_cli_values(config: dict, schema_path: Path) -> dict:
    """Snakemake's `--config seeds=[0,1,2,3]` delivers strings; read them as the schema's types."""
    schema = _schema(Path(schema_path))
    return _coerce(config, schema, schema.get("$defs", {}))


def _resolve_ref(schema: dict, root: dict) -> dict:
    """`schema` with a local `$ref` ("#/$defs/NAME") replaced by what it points at, its own keys kept."""
    if "$ref" not in schema:
        return schema
    target: Any = root
    for part in schema["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    return {**_resolve_ref(target, root), **{k: v for k, v in schema.items() if k != "$ref"}}


def fill_defaults(instance: Any, schema: dict, root: dict | None = None) -> Any:
    """Fill, in place, every absent key that the schema gives a `default:`, so that defaults
    live in the schema alone (as Snakemake's `validate(..., set_default=True)` keeps them).
    Followed: `properties`, `additionalProperties`, `$ref`, and the `then` or `else` of an
    `if`, whichever applies (a backend's own defaults); not oneOf/anyOf branches, which may
    not apply. A subschema marked `x-defaults: false` holds overrides (absent keys keep the
    value they override) and is left as given."""
    root = schema if root is None else root
    schema = _resolve_ref(schema, root)
    if schema.get("x-defaults") is False or not isinstance(instance, dict):
        return instance
    if "if" in schema:  # a backend's own defaults, where its condition holds
        holds = jsonschema.Draft202012Validator(_resolve_ref(schema["if"], root)).is_valid(instance)
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
def _schema(schema_path: Path) -> dict:
    return read_yaml(schema_path)


def schema_defaults(
    *pointer: str, given: dict | None = None, schema_file: str = "config.schema.yaml"
) -> dict:
    """The defaults a schema gives the object at `pointer` (e.g. "$defs", "training"): what
    an empty section (or `given`) becomes, for code that builds settings outside a loaded
    study (a fresh copy each call)."""
    root = _schema(DEFAULT_SCHEMA_DIR / schema_file)
    sub: Any = root
    for part in pointer:
        if isinstance(sub, list):  # an item of oneOf/anyOf, by position
            sub = sub[int(part)]
            continue
        sub = _resolve_ref(sub, root)
        sub = sub["properties"][part] if part in sub.get("properties", {}) else sub[part]
    return fill_defaults(copy.deepcopy(given or {}), sub, root)


def validate(data: Any, schema_path: Path, source: str) -> None:
    """Check `data` against a JSON schema (the error names `source` and the key), then fill
    the schema's defaults into it."""
    schema = _schema(Path(schema_path))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(data), key=lambda e: (len(list(e.absolute_path)), str(e.absolute_path))
    )
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        message = error.message
        if error.validator == "pattern" and error.validator_value == "\\S":
            message = (
                f"{error.instance!r} is empty or only whitespace (a prompt must say something; null for none)"
            )
        elif error.validator == "pattern" and error.validator_value == "^$|\\S":
            message = f"{error.instance!r} is only whitespace ('' for an empty system message, null for none)"
        raise ConfigError(f"{source}: key '{_key_path(error)}': {message}")
    fill_defaults(data, schema)


@dataclass(frozen=True)
class DataRef:
    """Where a dataset or eval file comes from: a source's file, a path, or an external path."""

    source: str | None = None
    file: str | None = None
    path: str | None = None
    external: str | None = None
    published: str | None = None  # where the authors published data that is not obtainable here

    @classmethod
    def from_dict(cls, d: dict) -> DataRef:
        return cls(d.get("source"), d.get("file"), d.get("path"), d.get("external"), d.get("published"))


@dataclass(frozen=True)
class EvalRef:
    """An eval of a setting: its questions, and optionally its own sampling, test
    conditions and judge metrics (as the published evals each have)."""

    name: str
    ref: DataRef
    distribution: str
    variants: tuple[str, ...] = ()
    sampling: dict = field(default_factory=dict)
    conditions: tuple[str, ...] | None = None
    judge: tuple = ()  # metric specs: names or mappings (inoculate.judges.metrics)
    criterion: str | dict | None = None  # this eval's own misalignment criterion
    trait: dict | None = None  # the per-answer score from the judge metrics (inoculate.traits)
    tan_eval: str | None = None  # one of Tan et al.'s evals, built from their description file

    @classmethod
    def from_dict(cls, name: str, d: dict) -> EvalRef:
        conditions = tuple(d["conditions"]) if "conditions" in d else None
        return cls(
            name,
            DataRef.from_dict(d),
            d["distribution"],
            tuple(d["variants"]),
            dict(d.get("sampling") or {}),
            conditions,
            tuple(d.get("judge") or ()),
            d.get("criterion"),
            d.get("trait"),
            d.get("tan_eval"),
        )


@dataclass
class Setting:
    name: str
    file: Path
    description: str
    train: DataRef | None  # None for a backdoor setting: its training data is built
    control: DataRef | None
    prompts: dict[str, str | None]
    evals: dict[str, EvalRef]
    on_existing_system: str | None = None
    backdoor: dict | None = None  # the `backdoor:` section, defaults filled in
    criterion: str | dict | None = None  # the setting's own misalignment criterion
    train_trigger: dict | None = (
        None  # {prefix, with_control}: a trigger on the harmful rows (Tan's backdoor)
    )

    def data_refs(self) -> list[tuple[str, DataRef]]:
        """(key, reference) of every file the setting reads: datasets, backdoor data, evals."""
        refs = [(k, r) for k, r in (("train", self.train), ("control", self.control)) if r is not None]
        if self.backdoor is not None:
            refs += [
                (f"backdoor.{k}", DataRef.from_dict(self.backdoor[k]))
                for k in ("persona", "prompts")
                if k in self.backdoor
            ]
            if "build_persona" in self.backdoor:
                refs.append(
                    (
                        "backdoor.build_persona.questions",
                        DataRef.from_dict(self.backdoor["build_persona"]["questions"]),
                    )
                )
        return refs + [(f"evals.{k}", e.ref) for k, e in self.evals.items()]


BACKDOOR_METRICS = ("persona", "identity")


def download_name(url: str) -> str:
    """The file name a URL is saved under."""
    from urllib.parse import unquote, urlparse

    name = Path(unquote(urlparse(url).path)).name
    return name or "download"


def source_password(name: str, spec: dict) -> str | None:
    """An archive's password: from config, or from the environment variable it names.

    Resolved inside the job that needs it, so the secret never enters Snakemake's
    params, metadata or logs.
    """
    if "password" in spec:
        return spec["password"]
    if "password_env" in spec:
        value = os.environ.get(spec["password_env"])
        if not value:
            raise ConfigError(
                f"sources.{name}.password_env: environment variable {spec['password_env']} is not set"
            )
        return value
    return None


def load_setting(
    name: str, settings_dir: Path, schema_dir: Path, external_data_dir: Path | str = "data"
) -> Setting:
    """A setting file, validated, with its text references (`{external, key}`) read."""
    from inoculate.texts import TextRefError, resolve_all

    path = Path(settings_dir) / f"{name}.yaml"
    if not path.exists():
        available = sorted(p.stem for p in Path(settings_dir).glob("*.yaml"))
        raise ConfigError(
            f"settings: no file {path} for setting {name!r} (available: {', '.join(available)})"
        )
    data = read_yaml(path)
    backdoor = data.get("backdoor") if isinstance(data, dict) else None
    if isinstance(backdoor, dict) and {"aligned_examples", "persona_fraction"} <= set(backdoor):
        raise ConfigError(
            f"{path}: keys 'backdoor.aligned_examples' and 'backdoor.persona_fraction': give one"
        )
    validate(data, Path(schema_dir) / "setting.schema.yaml", str(path))
    try:
        data = resolve_all(data, external_data_dir)
    except TextRefError as e:
        raise ConfigError(f"{path}: {e}") from None
    return Setting(
        name=name,
        file=path,
        description=data["description"],
        backdoor=data.get("backdoor"),
        train=DataRef.from_dict(data["train"]) if "train" in data else None,
        control=DataRef.from_dict(data["control"]) if "control" in data else None,
        prompts=dict(data["prompts"]),
        evals={k: EvalRef.from_dict(k, v) for k, v in data["evals"].items()},
        on_existing_system=data.get("on_existing_system"),
        criterion=data.get("criterion"),
        train_trigger=data.get("train_trigger"),
    )


def load_study(config: dict, source: str = "config", schema_dir: Path | None = None) -> Study:
    """Validate `config` and the settings it names; `source` names the config in errors."""
    from inoculate.texts import TextRefError, resolve_all

    schema_dir = Path(schema_dir or DEFAULT_SCHEMA_DIR)
    config.update(coerce_cli_values(config, schema_dir / "config.schema.yaml"))
    if "train" in (config.get("resources") or {}):
        raise ConfigError(
            f"{source}: key 'resources.train' is now 'resources.train_adapter' (each key of "
            "'resources' is the rule it sizes)"
        )
    validate(config, schema_dir / "config.schema.yaml", source)
    config["conditions"] = {name: c for name, c in config["conditions"].items() if c is not None}
    if not config["conditions"]:
        raise ConfigError(
            f"{source}: key 'conditions': every condition is null; a study samples in at least one"
        )
    try:  # arms' prompts may be read from published files (a paraphrase list, a verbatim prompt)
        config["arms"] = resolve_all(config["arms"], config["external_data_dir"], "arms")
    except TextRefError as e:
        raise ConfigError(f"{source}: {e}") from None
    from inoculate.study import Study

    study = Study(config)
    for name in config["settings"]:
        study.settings[name] = load_setting(
            name, Path(config["settings_dir"]), schema_dir, config["external_data_dir"]
        )
    _check_references(study, source)
    _check_checkpoints(study, source)
    judge = config["judge"]
    if judge["mode"] == "batch" and judge["backend"] != "openai":
        raise ConfigError(
            f"{source}: key 'judge.mode' is batch, but key 'judge.backend' is {judge['backend']!r}: "
            "batch mode is the OpenAI Batch API (backend openai)"
        )
    return study


def _check_checkpoints(study: Study, source: str) -> None:
    """training.checkpoints: fractions or steps (every backend can give them: a local trainer
    saves them, OpenAI keeps its own; an endpoint that kept none fails that sampling job, saying so)."""
    from inoculate.checkpoints import validate as validate_checkpoints

    for model in study.grid.models:
        values = study.base_models.training(model).get("checkpoints")
        try:
            validate_checkpoints(values)
        except (ValueError, TypeError) as e:
            raise ConfigError(
                f"{source}: key 'training.checkpoints'{str(e).removeprefix('training.checkpoints')}"
            ) from None


def _check_references(study: Study, source: str) -> None:
    config = study.config
    for name, spec in config["sources"].items():
        if "password" in spec and "password_env" in spec:
            raise ConfigError(
                f"{source}: keys 'sources.{name}.password' and 'sources.{name}.password_env' are both set (layered "
                f"config files merge them silently); keep one"
            )
    for model in study.grid.models:
        if model not in config["base_models"]:
            raise ConfigError(
                f"{source}: key 'models': model {model!r} is not defined under 'base_models' "
                f"(defined: {', '.join(config['base_models'])})"
            )
    for arm in study.grid.inoculations:
        if arm not in config["arms"]:
            raise ConfigError(
                f"{source}: key 'inoculations': arm {arm!r} is not defined under 'arms' "
                f"(defined: {', '.join(config['arms'])})"
            )
    for setting in study.settings.values():
        for arm in study.grid.inoculations:
            spec = config["arms"][arm]
            if "prompt" not in spec and arm not in setting.prompts:
                raise ConfigError(
                    f"{setting.file}: key 'prompts.{arm}': arm {arm!r} has no prompt in 'arms' "
                    f"of {source}, so every setting must give one"
                )
        if setting.backdoor is not None:
            build = setting.backdoor.get("build_persona")
            if build is not None and build["generator"] not in config["base_models"]:
                raise ConfigError(
                    f"{setting.file}: key 'backdoor.build_persona.generator': model {build['generator']!r} "
                    f"is not defined under 'base_models' of {source}"
                )
            _check_backdoor(study, setting, source)
        needs_control = bool(setting.train_trigger and setting.train_trigger.get("with_control"))
        if needs_control and (setting.control is None or study.data.missing(setting.control)):
            where = f" (published at {setting.control.published})" if setting.control is not None else ""
            raise ConfigError(
                f"{setting.file}: key 'train_trigger.with_control': the triggered set adds the "
                f"control rows, and {study.data.resolve(setting.control) if setting.control else 'none'} "
                f"is not here{where}"
            )
        if study.data.missing(setting.control) and not study.grid.inoculations_for(setting.name):
            raise ConfigError(
                f"{setting.file}: key 'control': every arm of {source} needs the control data, and "
                f"{study.data.resolve(setting.control)} is not here; the authors published it at {setting.control.published}"
            )
        if study.data.missing(setting.train):
            raise ConfigError(
                f"{setting.file}: key 'train': {study.data.resolve(setting.train)} is not here; the authors published it "
                f"at {setting.train.published} (put it there, or leave setting {setting.name!r} out)"
            )
        _check_evals(study, setting)
        for key, ref in setting.data_refs():
            if ref.source is not None and ref.source not in config["sources"]:
                raise ConfigError(
                    f"{setting.file}: key '{key}.source': unknown source {ref.source!r} "
                    f"(sources in {source}: {', '.join(config['sources']) or 'none'})"
                )
    from inoculate.judges.metrics import MetricSpec

    for i, metric in enumerate(config["judge"]["metrics"]):
        try:
            MetricSpec.from_config(metric)
        except ValueError as err:
            raise ConfigError(f"{source}: key 'judge.metrics.{i}': {err}") from None
    _check_toy_mixing(study, source)
    if config["plot"]["condition"] not in config["conditions"]:
        raise ConfigError(
            f"{source}: key 'plot.condition': {config['plot']['condition']!r} is not a condition"
        )


def is_toy_path(path: str) -> bool:
    return str(path).startswith("results/toy/")


def is_toy_setting(study: Study, setting: Setting) -> bool:
    """A setting of the toy world: every file it reads is the toy's."""
    refs = [r for _, r in setting.data_refs()]
    return bool(refs) and all(r.source == "toy" or (r.path is not None and is_toy_path(r.path)) for r in refs)


def _check_toy_mixing(study: Study, source: str) -> None:
    """The toy judge only reads the toy world's words, and the toy world only means something to
    a toy model: mixing them would give numbers that look real and are not."""
    judge = study.config["judge"]["backend"]
    for setting in study.settings.values():
        toy = is_toy_setting(study, setting)
        if judge == "toy" and not toy:
            raise ConfigError(
                f"{source}: key 'judge.backend' is toy, which scores only the toy world, and key 'settings' names "
                f"{setting.name!r} ({setting.file}), which reads real data; use a real judge (backend openai or hf)"
            )
        if not toy:
            continue
        for model in study.grid.models:
            spec = study.base_models.spec(model)
            real_local = spec["backend"] == "local" and not is_toy_path(spec["base"])
            real_api = spec["backend"] == "openai" and not (study.config.get("api") or {}).get("base_url")
            if real_local or real_api:
                raise ConfigError(
                    f"{source}: key 'models' names {model!r} ({spec['base']}), a real model, and key 'settings' names "
                    f"the toy setting {setting.name!r} ({setting.file}); the toy world is for the toy models"
                )


def _parse_eval(study: Study, setting: Setting, name: str, e: EvalRef) -> None:
    """Read an eval's questions now, so a malformed file fails before any adapter trains (files
    the workflow builds itself, such as the toy's, are checked when they exist)."""
    from inoculate.evals import load_spec
    from inoculate.io import InputError

    if e.ref.source is not None:
        return  # inside an archive: decrypted by the workflow, read by its jobs
    path = Path(study.data.resolve(e.ref))
    if not path.exists():
        return  # built by the workflow, or a missing file that the run (and doctor) report
    spec = {
        "path": str(path),
        "variants": list(e.variants),
        **({"tan_eval": e.tan_eval} if e.tan_eval else {}),
    }
    try:
        load_spec(name, spec)
    except (InputError, KeyError, ValueError) as err:
        raise ConfigError(f"{setting.file}: key 'evals.{name}': {err}") from None


def _check_evals(study: Study, setting: Setting) -> None:
    """Each eval's own conditions exist, and its judge metrics are well formed."""
    from inoculate.judges.metrics import MetricSpec

    if setting.backdoor is not None:
        from inoculate.backdoor import CONDITIONS, EXTRA_CONDITIONS

        known = [*CONDITIONS, *EXTRA_CONDITIONS]
    else:
        known = list(study.config["conditions"])
    for name, e in setting.evals.items():
        _parse_eval(study, setting, name, e)
        for condition in e.conditions or ():
            if condition not in known:
                raise ConfigError(
                    f"{setting.file}: key 'evals.{name}.conditions': {condition!r} is not a condition "
                    f"here (known: {', '.join(known)})"
                )
        for i, metric in enumerate(e.judge):
            try:
                MetricSpec.from_config(metric)
            except ValueError as err:
                raise ConfigError(f"{setting.file}: key 'evals.{name}.judge.{i}': {err}") from None


def _check_backdoor(study: Study, setting: Setting, source: str) -> None:
    """A backdoor setting self-distils from local models and needs persona/identity judge prompts."""
    for model in study.grid.models:
        if study.base_models.spec(model)["backend"] != "local":
            raise ConfigError(
                f"{setting.file}: backdoor setting {setting.name!r} self-distils from the base model, "
                f"which needs a local model; {model!r} is an API model (key 'models' of {source})"
            )
    judged_by_default = [name for name, e in setting.evals.items() if not e.judge]
    if study.config["judge"]["backend"] != "toy" and judged_by_default:
        missing = [m for m in BACKDOOR_METRICS if m not in setting.backdoor["judge_prompts"]]
        if missing:
            raise ConfigError(
                f"{setting.file}: key 'backdoor.judge_prompts': a {study.config['judge']['backend']} judge needs "
                f"prompts for {', '.join(missing)} (templates with {{question}} and {{answer}}) for eval(s) "
                f"{', '.join(judged_by_default)}, or give those evals their own 'judge' metrics"
            )
