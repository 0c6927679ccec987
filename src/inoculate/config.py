"""Study files read into data: a config and its setting files validated against the
schemas (defaults filled), their text references resolved, and each setting turned into
`Setting`, `DataRef` and `EvalRef` values. Checks that need the whole study are in
`inoculate.checks`; what a loaded study answers is `inoculate.study`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from inoculate.io import read_yaml
from inoculate.schema import CONFIG_SCHEMA, SETTING_SCHEMA, ConfigError, coerce_cli_values, validate
from inoculate.secrets import remember
from inoculate.texts import TextRefError, resolve_all

__all__ = ["ConfigError"]  # raised by every loader here; defined with the schema

BASE_ARM = "base"
ARCHIVE_SUFFIX = ".zip.enc"


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
    group: str | None = None  # of a file of question groups, the one this eval asks

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
            d.get("group"),
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
    label: str | None = None  # its name in figures

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
    name = Path(unquote(urlparse(url).path)).name
    return name or "download"


def source_password(name: str, spec: dict) -> str | None:
    """An archive's password: from config, or from the environment variable it names.

    Resolved inside the job that needs it, so the secret never enters Snakemake's
    params, metadata or logs.
    """
    if "password" in spec:
        remember(spec["password"])
        return spec["password"]
    if "password_env" in spec:
        value = os.environ.get(spec["password_env"])
        remember(value)
        if not value:
            raise ConfigError(
                f"sources.{name}.password_env: environment variable {spec['password_env']} is not set"
            )
        return value
    return None


def load_setting(name: str, settings_dir: Path, external_data_dir: Path | str = "data") -> Setting:
    """A setting file, validated, with its text references (`{external, key}`) read."""
    path = Path(settings_dir) / f"{name}.yaml"
    if not path.exists():
        available = sorted(p.stem for p in Path(settings_dir).glob("*.yaml"))
        raise ConfigError(
            f"settings: no file {path} for setting {name!r} (available: {', '.join(available)})"
        )
    data = read_yaml(path, bound_aliases=True)
    backdoor = data.get("backdoor") if isinstance(data, dict) else None
    if isinstance(backdoor, dict) and {"aligned_examples", "persona_fraction"} <= set(backdoor):
        raise ConfigError(
            f"{path}: keys 'backdoor.aligned_examples' and 'backdoor.persona_fraction': give one"
        )
    validate(data, SETTING_SCHEMA, str(path))
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
        label=data.get("label"),
    )


def read_config(config: dict, source: str = "config", overrides: dict | None = None) -> dict:
    """`config` (merged layers and `--config` values) validated, in place: strings read as the
    schema's types, defaults filled, null conditions dropped, text references in `arms` read.
    `source` names the config in errors, the command line for keys that `overrides` (`--config`)
    set."""
    config.update(coerce_cli_values(config, CONFIG_SCHEMA))
    if "train" in (config.get("resources") or {}):
        raise ConfigError(
            f"{source}: key 'resources.train' is now 'resources.train_adapter' (each key of "
            "'resources' is the rule it sizes)"
        )
    validate(config, CONFIG_SCHEMA, source, overrides)
    config["conditions"] = {name: c for name, c in config["conditions"].items() if c is not None}
    if not config["conditions"]:
        raise ConfigError(
            f"{source}: key 'conditions': every condition is null; a study samples in at least one"
        )
    try:  # arms' and judge prompts may be read from published files (a paraphrase list, a verbatim prompt)
        config["arms"] = resolve_all(config["arms"], config["external_data_dir"], "arms")
        if config["judge"].get("prompts"):
            config["judge"]["prompts"] = resolve_all(
                config["judge"]["prompts"], config["external_data_dir"], "judge.prompts"
            )
    except TextRefError as e:
        raise ConfigError(f"{source}: {e}") from None
    return config


def load_settings(config: dict) -> dict[str, Setting]:
    """Every setting a read config names, by name."""
    return {
        name: load_setting(name, Path(config["settings_dir"]), config["external_data_dir"])
        for name in config["settings"]
    }


def is_toy_path(path: str) -> bool:
    return str(path).startswith("results/toy/")


def is_toy_setting(setting: Setting) -> bool:
    """A setting of the toy world: every file it reads is the toy's."""
    refs = [r for _, r in setting.data_refs()]
    return bool(refs) and all(r.source == "toy" or (r.path is not None and is_toy_path(r.path)) for r in refs)
