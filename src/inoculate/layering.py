"""Config files layered with several `--configfile`s: refused unless one says it is an overlay.

Snakemake merges config files key by key, silently: two experiment files given together make
a hybrid study that neither describes (`toy_backdoor.yaml` + `toy_all_arms.yaml` resolve to
655 jobs, the reverse order to 37). So beyond the default config, a second study file is
accepted only when it declares `overlay_of: NAME` (the stem of a file given before it); the
keys each file sets are listed in the error, and the resolved config of every run is written
to `results/config.resolved.yaml`.

A personal file that sets only machine-local keys (where the data is, cache and spend folders,
resources, the variables that hold keys) is no study: it layers on any study without
`overlay_of`. The data folder can also come from the environment (`INOCULATE_DATA`), unless a
file after the default config or `--config` sets it.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any

from inoculate.io import read_yaml, write_yaml
from inoculate.schema import ConfigError

DATA_ENV = "INOCULATE_DATA"
# Keys that say where things are on this machine, not what a study does.
MACHINE_LOCAL = (
    "external_data_dir",
    "resources",
    "resources.*",
    "judge.cache_dir",
    "judge.spend_dir",
    "judge.api_key_env",
    "api.cache_dir",
    "api.registry_dir",
    "api.keys",
    "sources.*.password_env",
)


def is_machine_local(data: dict) -> bool:
    """Whether a config file sets machine-local keys only (a personal file, not a study)."""
    keys = _keys(data)
    return bool(keys) and all(any(fnmatch.fnmatchcase(k, pattern) for pattern in MACHINE_LOCAL) for k in keys)


def study_name(config: dict, configfiles: list[Path | str], default: Path | str) -> str | None:
    """The study's name: `study` if set, else the stem of the last study file given (personal
    files and the default config are no study); None for the default study."""
    if config.get("study"):
        return config["study"]
    studies = [
        Path(f)
        for f in configfiles
        if Path(f).resolve() != Path(default).resolve() and not is_machine_local(read_yaml(f) or {})
    ]
    return studies[-1].stem if studies else None


def data_dir_from_environment(
    config: dict, configfiles: list[Path | str], default: Path | str, overrides: dict | None = None
) -> None:
    """`external_data_dir` from INOCULATE_DATA, in place, where no file after the default
    config nor `--config` sets it."""
    value = os.environ.get(DATA_ENV)
    if not value or "external_data_dir" in (overrides or {}):
        return
    later = [Path(f) for f in configfiles if Path(f).resolve() != Path(default).resolve()]
    if any("external_data_dir" in (read_yaml(f) or {}) for f in later if f.exists()):
        return
    config["external_data_dir"] = value


def _keys(data: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out |= _keys(value, f"{path}.")
        else:
            out.add(path)
    return out


def check_layers(configfiles: list[Path | str], default: Path | str) -> None:
    """Raise ConfigError when study files are combined without an overlay declaration."""
    for path in {Path(default), *map(Path, configfiles)}:  # what Snakemake's own reader lets pass
        if path.exists():
            read_yaml(path, bound_aliases=True)
    studies = [Path(f) for f in configfiles if Path(f).resolve() != Path(default).resolve()]
    for i, path in enumerate(studies[1:], start=1):
        data = read_yaml(path) or {}
        earlier = [p.stem for p in studies[:i]]
        if data.get("overlay_of") in earlier or is_machine_local(data):
            continue
        both = sorted(_keys(read_yaml(studies[i - 1]) or {}) & _keys(data))
        raise ConfigError(
            f"{path} is given after {studies[i - 1]}: each is a whole study, and merging them key by key would run "
            f"a study neither describes (keys both set: {', '.join(both) or 'none'}). Run one at a time, or make "
            f"{path.name} an overlay by adding `overlay_of: {studies[i - 1].stem}` to it"
        )


def workflow_relative(config: dict, basedir: Path) -> None:
    """Relative folders of the workflow's own files, in place, found from the workflow's folder
    when the working folder (`snakemake -d DIR`) does not have them: the settings, and the
    default data folder."""
    for key in ("settings_dir", "external_data_dir"):
        value = Path(config[key])
        if not value.is_absolute() and not value.exists() and (basedir / value).exists():
            config[key] = str(basedir / value)


def write_resolved(
    config: dict, configfiles: list[Path | str], out: Path | str = "results/config.resolved.yaml"
) -> None:
    """The config a run used, after every layer and --config, with the files it came from."""
    resolved: dict[str, Any] = {"configfiles": [str(f) for f in configfiles], **config}
    write_yaml(out, resolved)
