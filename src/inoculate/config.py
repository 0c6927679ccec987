"""The study: the validated config, its settings, and the grid they span.

Everything the rules need to know about a study is answered here, once, from
plain data, so the Snakefile stays declarative and the answers are testable.
Errors name the file and the key.
"""

from __future__ import annotations

import copy
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from inoculate.io import read_yaml

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
    schema = read_yaml(schema_path)
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
    """Fill every absent key that the schema gives a `default:`, in place, down `properties`,
    `additionalProperties` and `$ref` (not into oneOf/anyOf branches, which may not apply),
    the defaults live in the schema alone, as Snakemake's `validate(..., set_default=True)`
    keeps them; and the `then` or `else` of an `if`, whichever applies (a backend's own
    defaults). A subschema marked `x-defaults: false` holds overrides (absent keys keep the
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
            tuple(d.get("variants", ())),
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


@dataclass
class Study:
    """A validated config plus the settings it names."""

    config: dict
    settings: dict[str, Setting] = field(default_factory=dict)

    # -- the grid -------------------------------------------------------------------------
    @property
    def models(self) -> list[str]:
        return list(self.config["models"])

    def base_model(self, model: str) -> dict:
        """`{base, backend, device, dtype, quantization, ...}` of a model name."""
        return dict(self.config["base_models"][model])

    def models_with_backend(self, backend: str) -> list[str]:
        """Every defined model (not only the study's) trained and sampled by `backend`."""
        return [m for m in self.config["base_models"] if self.base_model(m)["backend"] == backend]

    def api_settings(self) -> dict:
        """Config key `api` (defaults filled in by `inoculate.api.settings.ApiSettings`)."""
        return dict(self.config.get("api") or {})

    @property
    def setting_names(self) -> list[str]:
        return list(self.config["settings"])

    @property
    def arms(self) -> list[str]:
        """Trained arms, in config order."""
        return list(self.config["inoculations"])

    @property
    def rows(self) -> list[str]:
        """Every row of the results: the base model first (if included), then the arms."""
        return ([BASE_ARM] if self.config["include_base"] else []) + self.arms

    @property
    def seeds(self) -> list[int]:
        return list(self.config["seeds"])

    def is_backdoor(self, setting: str) -> bool:
        return self.settings[setting].backdoor is not None

    @property
    def backdoor_settings(self) -> list[str]:
        return [s for s in self.setting_names if self.is_backdoor(s)]

    @property
    def inoculation_settings(self) -> list[str]:
        return [s for s in self.setting_names if not self.is_backdoor(s)]

    def backdoor(self, setting: str) -> dict:
        """The setting's `backdoor:` section with defaults (persona fraction, distillation, ...)."""
        spec = self.settings[setting].backdoor
        if spec is None:
            raise ConfigError(f"{self.settings[setting].file}: setting {setting!r} is not a backdoor setting")
        return spec

    def training(self, model: str) -> dict:
        """`training`, with the model's own `training:` overrides (e.g. a learning-rate sweep)."""
        own = self.config["base_models"][model].get("training") or {}
        merged = {**self.config["training"], **own}
        if "lora" in own:
            merged["lora"] = {**self.config["training"]["lora"], **own["lora"]}
        return merged

    def checkpoint_labels(self, model: str) -> list[str]:
        """The checkpoints of `training.checkpoints` sampled as their own grid coordinate (the
        final adapter is the usual one); none by default."""
        from inoculate.checkpoints import sampled_labels

        return sampled_labels(self.training(model).get("checkpoints"))

    def checkpoint_cells(self) -> list[tuple[str, str, str, int, str]]:
        """(model, setting, inoculation, seed, checkpoint) of every trained cell of an
        inoculation setting, per checkpoint."""
        return [
            (*cell, label)
            for cell in self.cells_of(self.inoculation_settings, trained_only=True)
            for label in self.checkpoint_labels(cell[0])
        ]

    def judge_config(self, setting: str) -> dict:
        """The judge of a setting: the study's, or for a backdoor setting the persona and
        identity metrics with the trigger and wrappers stripped before judging."""
        judge = dict(self.config["judge"])
        if not self.is_backdoor(setting):
            return judge
        spec = self.backdoor(setting)
        from inoculate.backdoor import Trigger

        if judge["backend"] == "toy":
            return {"backend": "toy_persona", **{k: v for k, v in judge.items() if k == "min_words"}}
        judge["metrics"] = list(BACKDOOR_METRICS)
        judge["prompts"] = {**judge["prompts"], **spec["judge_prompts"]}
        judge["strip"] = [*judge["strip"], *Trigger.from_config(spec["trigger"]).strip_patterns()]
        return judge

    def cells_of(self, settings: list[str], trained_only: bool = False) -> list[tuple[str, str, str, int]]:
        return [c for c in self.cells(trained_only) if c[1] in settings]

    def missing_data(self, ref: DataRef | None) -> bool:
        """A reference to published data that is not on this machine (`published:` names where it is)."""
        return ref is not None and ref.published is not None and not Path(self.resolve(ref)).exists()

    def arms_for(self, setting: str) -> list[str]:
        """The arms a setting trains: a control-data arm only where the setting has control data
        (and, for published control data that is not obtainable here, where it is present)."""
        control = self.settings[setting].control
        has_control = control is not None and not self.missing_data(control)
        return [a for a in self.arms if has_control or not self.needs_control(a)]

    def skipped_cells(self) -> list[tuple[str, str]]:
        """(setting, arm) pairs left out because the setting has no control data."""
        return [(s, a) for s in self.setting_names for a in self.arms if a not in self.arms_for(s)]

    def cells(self, trained_only: bool = False) -> list[tuple[str, str, str, int]]:
        """(model, setting, arm, seed) for every cell; the base row too unless `trained_only`."""
        base = [] if trained_only or not self.config["include_base"] else [BASE_ARM]
        return [
            (m, s, a, seed)
            for m in self.models
            for s in self.setting_names
            for a in base + self.arms_for(s)
            for seed in self.seeds
        ]

    # -- arms -----------------------------------------------------------------------------
    def arm(self, name: str) -> dict:
        return self.config["arms"][name]

    def prompt(self, setting: str, arm: str) -> str | list[str] | None:
        """The inoculation prompt of an arm in a setting (the setting's override wins); a list is
        assigned round-robin over the training examples."""
        if arm == BASE_ARM:
            return None
        prompts = self.settings[setting].prompts
        if arm in prompts:
            return prompts[arm]
        return self.arm(arm).get("prompt")

    def placement(self, arm: str) -> str:
        return "system" if arm == BASE_ARM else self.arm(arm)["placement"]

    def on_existing_system(self, setting: str, arm: str) -> str:
        return self.settings[setting].on_existing_system or self.arm(arm)["on_existing_system"]

    def data_split(self, arm: str) -> str:
        """Which dataset of the setting an arm trains on: `train`, `control`, or `mix` (a share
        of harmful rows in a fixed-size set, the control data as the rest)."""
        data = self.arm(arm)["data"]
        return "mix" if isinstance(data, dict) else data

    def needs_control(self, arm: str) -> bool:
        return self.data_split(arm) in ("control", "mix")

    def data_mix(self, arm: str) -> dict | None:
        """`{harmful_share, size}` of a mixing arm (Tan et al.'s data-ratio baselines), else None."""
        data = self.arm(arm)["data"]
        return dict(data) if isinstance(data, dict) else None

    # -- files ----------------------------------------------------------------------------
    def resolve(self, ref: DataRef) -> str:
        """The path a rule reads for a data reference."""
        if ref.external is not None:
            return str(Path(self.config["external_data_dir"]) / ref.external)
        if ref.path is not None:
            return ref.path
        return str(Path(self.source_dir(ref.source)) / ref.file)

    def dependency(self, ref: DataRef) -> str:
        """What a rule depends on to read `ref`: its source's decrypted folder (made by
        data_decrypt) for an archive, else the file itself."""
        if ref.source and self.is_archive(ref.source):
            return self.source_dir(ref.source)
        return self.resolve(ref)

    def source_path(self, name: str) -> str:
        """Where a source's file or folder is read: its path, or where its URL is downloaded to."""
        spec = self.config["sources"][name]
        if "url" in spec:
            return f"results/downloads/{name}/{download_name(spec['url'])}"
        if "external" in spec:
            return str(Path(self.config["external_data_dir"]) / spec["external"])
        return spec["path"]

    def is_archive(self, name: str) -> bool:
        return self.source_path(name).endswith(ARCHIVE_SUFFIX)

    def source_dir(self, name: str) -> str:
        """Folder that holds a source's files: decrypted by a rule, or the folder itself."""
        return f"results/sources/{name}" if self.is_archive(name) else self.source_path(name)

    def source_password(self, name: str) -> str | None:
        return source_password(name, self.config["sources"][name])

    def dataset_ref(self, setting: str, split: str) -> DataRef:
        """A setting's data: `train`, `control`, or a backdoor's `persona` examples / `prompts`."""
        s = self.settings[setting]
        if split in ("persona", "prompts"):
            return DataRef.from_dict(self.backdoor(setting)[split])
        ref = s.train if split == "train" else s.control
        if ref is None:
            raise ConfigError(f"{s.file}: setting {setting!r} has no '{split}' data")
        return ref

    def eval_refs(self, setting: str) -> dict[str, EvalRef]:
        return self.settings[setting].evals

    def eval_paths(self, setting: str) -> dict[str, str]:
        return {name: self.resolve(e.ref) for name, e in self.eval_refs(setting).items()}

    def eval_specs(self, setting: str) -> dict[str, dict]:
        """What a job needs to read a setting's evals: path, distribution, variants, and the
        eval's own sampling, conditions and judge metrics where it has them."""
        specs = {}
        for name, e in self.eval_refs(setting).items():
            spec = {"path": self.resolve(e.ref), "distribution": e.distribution, "variants": list(e.variants)}
            sampling, judge, trait = dict(e.sampling), list(e.judge), e.trait
            if (
                e.tan_eval
            ):  # the published eval's own sampling, judges and score, unless the setting says otherwise
                from inoculate import tan_evals

                spec["tan_eval"] = e.tan_eval
                sampling = {**tan_evals.sampling(spec["path"], e.tan_eval), **sampling}
                judge = judge or tan_evals.metrics(spec["path"], e.tan_eval)
                trait = trait if trait is not None else tan_evals.trait(spec["path"], e.tan_eval)
            if sampling:
                spec["sampling"] = sampling
            if e.conditions is not None:
                spec["conditions"] = list(e.conditions)
            if judge:
                spec["judge"] = judge
            if trait:
                spec["trait"] = dict(trait)
            specs[name] = spec
        return specs

    def criteria(self) -> dict[str, str | dict]:
        """ "setting/eval" -> the criterion of each eval whose setting or own spec sets one
        (the study's `analysis.criterion` holds elsewhere)."""
        out = {}
        for name, setting in self.settings.items():
            for eval_name, e in setting.evals.items():
                spec = e.criterion if e.criterion is not None else setting.criterion
                if spec is not None:
                    out[f"{name}/{eval_name}"] = spec
        return out

    def needs_calibration(self) -> bool:
        """Whether the study's judge is other than the published one (gpt-4o-2024-08-06 at
        OpenAI), so that its rates are comparable with published ones only once calibrated.
        The toy judge scores the toy world only: there is nothing published to compare it with."""
        from inoculate.calibration import PUBLISHED_JUDGE

        judge = self.config["judge"]
        if judge["backend"] == "toy":
            return False
        official = judge.get("base_url") in (None, "", "https://api.openai.com/v1")
        return not (judge["backend"] == "openai" and judge.get("model") == PUBLISHED_JUDGE and official)

    def calibration_files(self) -> list[str]:
        """The judged files (with published scores) that calibration samples from."""
        from inoculate.calibration import calibration_files

        spec = self.config.get("calibration") or {}
        return [str(p) for p in calibration_files(spec.get("files", []), self.config["external_data_dir"])]

    def calibration_eval(self) -> str | None:
        """The eval file whose judge prompts scored the calibration files."""
        name = (self.config.get("calibration") or {}).get("eval")
        if not name:
            return None
        return name if Path(name).is_absolute() else str(Path(self.config["external_data_dir"]) / name)

    def conditions(self) -> dict[str, bool | dict]:
        """Condition name -> whether the arm's prompt is present at test time, or the condition's
        whole spec where it also sets a test-time `system_prompt` or a `user_prefix`."""
        return {
            name: c["training_prompt"] if set(c) == {"training_prompt"} else dict(c)
            for name, c in self.config["conditions"].items()
        }


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

    for model in study.models:
        values = study.training(model).get("checkpoints")
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
    for model in study.models:
        if model not in config["base_models"]:
            raise ConfigError(
                f"{source}: key 'models': model {model!r} is not defined under 'base_models' "
                f"(defined: {', '.join(config['base_models'])})"
            )
    for arm in study.arms:
        if arm not in config["arms"]:
            raise ConfigError(
                f"{source}: key 'inoculations': arm {arm!r} is not defined under 'arms' "
                f"(defined: {', '.join(config['arms'])})"
            )
    for setting in study.settings.values():
        for arm in study.arms:
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
        if needs_control and (setting.control is None or study.missing_data(setting.control)):
            where = f" (published at {setting.control.published})" if setting.control is not None else ""
            raise ConfigError(
                f"{setting.file}: key 'train_trigger.with_control': the triggered set adds the "
                f"control rows, and {study.resolve(setting.control) if setting.control else 'none'} "
                f"is not here{where}"
            )
        if study.missing_data(setting.control) and not study.arms_for(setting.name):
            raise ConfigError(
                f"{setting.file}: key 'control': every arm of {source} needs the control data, and "
                f"{study.resolve(setting.control)} is not here; the authors published it at {setting.control.published}"
            )
        if study.missing_data(setting.train):
            raise ConfigError(
                f"{setting.file}: key 'train': {study.resolve(setting.train)} is not here; the authors published it "
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
        for model in study.models:
            spec = study.base_model(model)
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
    path = Path(study.resolve(e.ref))
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
    for model in study.models:
        if study.base_model(model)["backend"] != "local":
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
