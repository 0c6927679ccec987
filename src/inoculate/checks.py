"""A study loaded and checked as a whole: the cross-references between the config, its
settings, data and models that no schema can state. Each check is a named function that
takes the study and raises a `ConfigError` naming the file and key; `load_study` runs them
all, so a bad study fails before any job starts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from inoculate.api.settings import ApiSettings
from inoculate.backdoor import CONDITIONS as BACKDOOR_CONDITIONS
from inoculate.backdoor import EXTRA_CONDITIONS as BACKDOOR_EXTRA_CONDITIONS
from inoculate.checkpoints import validate as validate_checkpoints
from inoculate.config import (
    BACKDOOR_METRICS,
    ConfigError,
    EvalRef,
    Setting,
    is_toy_path,
    is_toy_setting,
    load_settings,
    read_config,
)
from inoculate.evals import load_spec
from inoculate.io import InputError
from inoculate.judges.metrics import MetricSpec
from inoculate.secrets import MissingSecret, get_secret
from inoculate.study import Study

Check = Callable[[Study, str], None]


def load_study(config: dict, source: str = "config", overrides: dict | None = None) -> Study:
    """`config` validated, the settings it names loaded, and every check of `CHECKS` passed;
    `source` names the config in errors (the command line for keys `overrides` set)."""
    read_config(config, source, overrides)
    study = Study(config, load_settings(config))
    for check in CHECKS:
        check(study, source)
    return study


def check_source_passwords(study: Study, source: str) -> None:
    """A source gives its password one way (layered files would merge both silently)."""
    for name, spec in study.config["sources"].items():
        if "password" in spec and "password_env" in spec:
            raise ConfigError(
                f"{source}: keys 'sources.{name}.password' and 'sources.{name}.password_env' are both set "
                "(layered config files merge them silently); keep one"
            )


def check_models_defined(study: Study, source: str) -> None:
    config = study.config
    for model in study.grid.models:
        if model not in config["base_models"]:
            raise ConfigError(
                f"{source}: key 'models': model {model!r} is not defined under 'base_models' "
                f"(defined: {', '.join(config['base_models'])})"
            )


def check_inoculations_defined(study: Study, source: str) -> None:
    """Each chosen inoculation is defined under `arms`, and has a prompt in every setting."""
    arms = study.config["arms"]
    for name in study.grid.inoculations:
        if name not in arms:
            raise ConfigError(
                f"{source}: key 'inoculations': arm {name!r} is not defined under 'arms' "
                f"(defined: {', '.join(arms)})"
            )
    for setting in study.settings.values():
        for name in study.grid.inoculations:
            if "prompt" not in arms[name] and name not in setting.prompts:
                raise ConfigError(
                    f"{setting.file}: key 'prompts.{name}': arm {name!r} has no prompt in 'arms' "
                    f"of {source}, so every setting must give one"
                )


def check_backdoor_settings(study: Study, source: str) -> None:
    """A backdoor setting self-distils from local models and needs persona/identity judge prompts."""
    for setting in study.settings.values():
        if setting.backdoor is None:
            continue
        build = setting.backdoor.get("build_persona")
        if build is not None and build["generator"] not in study.config["base_models"]:
            raise ConfigError(
                f"{setting.file}: key 'backdoor.build_persona.generator': model {build['generator']!r} "
                f"is not defined under 'base_models' of {source}"
            )
        for model in study.grid.models:
            if study.base_models.spec(model)["backend"] != "local":
                raise ConfigError(
                    f"{setting.file}: backdoor setting {setting.name!r} self-distils from the base model, "
                    f"which needs a local model; {model!r} is an API model (key 'models' of {source})"
                )
        judged_by_default = [name for name, e in setting.evals.items() if not e.judge]
        backend = study.config["judge"]["backend"]
        if backend != "toy" and judged_by_default:
            missing = [m for m in BACKDOOR_METRICS if m not in setting.backdoor["judge_prompts"]]
            if missing:
                raise ConfigError(
                    f"{setting.file}: key 'backdoor.judge_prompts': a {backend} judge needs "
                    f"prompts for {', '.join(missing)} (templates with {{question}} and {{answer}}) for eval(s) "
                    f"{', '.join(judged_by_default)}, or give those evals their own 'judge' metrics"
                )


def check_data_present(study: Study, source: str) -> None:
    """Published data that is not here stops the study where it is needed, saying where it is
    published: a setting's training data, and control data that an inoculation trains on."""
    data = study.data
    for setting in study.settings.values():
        control = setting.control
        needs_control = bool(setting.train_trigger and setting.train_trigger.get("with_control"))
        if needs_control and (control is None or data.missing(control)):
            where = f" (published at {control.published})" if control is not None else ""
            raise ConfigError(
                f"{setting.file}: key 'train_trigger.with_control': the triggered set adds the "
                f"control rows, and {data.resolve(control) if control else 'none'} is not here{where}"
            )
        if data.missing(control) and not study.grid.inoculations_for(setting.name):
            raise ConfigError(
                f"{setting.file}: key 'control': every arm of {source} needs the control data, and "
                f"{data.resolve(control)} is not here; the authors published it at {control.published}"
            )
        if data.missing(setting.train):
            raise ConfigError(
                f"{setting.file}: key 'train': {data.resolve(setting.train)} is not here; the authors "
                f"published it at {setting.train.published} (put it there, or leave setting "
                f"{setting.name!r} out)"
            )


def check_data_sources(study: Study, source: str) -> None:
    """Every `source:` a setting names is defined under `sources`."""
    sources = study.config["sources"]
    for setting in study.settings.values():
        for key, ref in setting.data_refs():
            if ref.source is not None and ref.source not in sources:
                raise ConfigError(
                    f"{setting.file}: key '{key}.source': unknown source {ref.source!r} "
                    f"(sources in {source}: {', '.join(sources) or 'none'})"
                )


def _parse_eval(study: Study, setting: Setting, name: str, e: EvalRef) -> None:
    """Read an eval's questions now, so a malformed file fails before any adapter trains (files
    the workflow builds itself, such as the toy's, are checked when they exist)."""
    if e.ref.source is not None:
        return  # inside an archive: decrypted by the workflow, read by its jobs
    path = Path(study.data.resolve(e.ref))
    if not path.exists():
        return  # built by the workflow, or a missing file that the run (and doctor) report
    spec = {
        "path": str(path),
        "variants": list(e.variants),
        **({"tan_eval": e.tan_eval} if e.tan_eval else {}),
        **({"group": e.group} if e.group else {}),
    }
    try:
        load_spec(name, spec)
    except (InputError, KeyError, ValueError) as err:
        raise ConfigError(f"{setting.file}: key 'evals.{name}': {err}") from None


def check_evals(study: Study, source: str) -> None:
    """Each eval's questions parse, its own conditions exist, and its judge metrics are well formed."""
    for setting in study.settings.values():
        if setting.backdoor is not None:
            known = [*BACKDOOR_CONDITIONS, *BACKDOOR_EXTRA_CONDITIONS]
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


def check_judge_metrics(study: Study, source: str) -> None:
    for i, metric in enumerate(study.config["judge"]["metrics"]):
        try:
            MetricSpec.from_config(metric)
        except ValueError as err:
            raise ConfigError(f"{source}: key 'judge.metrics.{i}': {err}") from None


def check_toy_mixing(study: Study, source: str) -> None:
    """The toy judge only reads the toy world's words, and the toy world only means something to
    a toy model: mixing them would give numbers that look real and are not."""
    judge = study.config["judge"]["backend"]
    for setting in study.settings.values():
        toy = is_toy_setting(setting)
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


def check_plot_condition(study: Study, source: str) -> None:
    condition = study.config["plot"]["condition"]
    if condition not in study.config["conditions"]:
        raise ConfigError(f"{source}: key 'plot.condition': {condition!r} is not a condition")


def check_checkpoints(study: Study, source: str) -> None:
    """training.checkpoints: fractions or steps (every backend can give them: a local trainer
    saves them, OpenAI keeps its own; an endpoint that kept none fails that sampling job, saying so)."""
    for model in study.grid.models:
        values = study.base_models.training(model).get("checkpoints")
        try:
            validate_checkpoints(values)
        except (ValueError, TypeError) as e:
            raise ConfigError(
                f"{source}: key 'training.checkpoints'{str(e).removeprefix('training.checkpoints')}"
            ) from None


def check_judge_mode(study: Study, source: str) -> None:
    judge = study.config["judge"]
    if judge["mode"] == "batch" and judge["backend"] != "openai":
        raise ConfigError(
            f"{source}: key 'judge.mode' is batch, but key 'judge.backend' is {judge['backend']!r}: "
            "batch mode is the OpenAI Batch API (backend openai)"
        )


def check_judge_budget(study: Study, source: str) -> None:
    """A budget counts spend at the judge's price: without one every call would cost $0 and the
    budget would never stop anything."""
    judge = study.config["judge"]
    if judge.get("budget_usd") is not None and not judge.get("price"):
        raise ConfigError(
            f"{source}: key 'judge.budget_usd' is set but key 'judge.price' is not: give the judge's "
            "USD per million tokens ({input_per_million, output_per_million}) so that spend can be counted"
        )


# Rules whose jobs call an API, and the config that names the variables holding their keys.
JUDGE_RULES = frozenset({"judge", "judge_checkpoint", "judge_calibration"})
API_RULES = frozenset({"train_api", "generate_api", "generate_api_checkpoint"})


def needed_keys(study: Study, rules: set[str]) -> dict[str, str]:
    """Variable -> what needs it, for the jobs of `rules` about to run."""
    needed: dict[str, str] = {}
    judge = study.config["judge"]
    if rules & JUDGE_RULES and judge["backend"] == "openai":
        needed[judge["api_key_env"]] = "the judge (judge.api_key_env)"
    api_models = set(study.grid.models) & set(study.base_models.with_backend("openai"))
    if rules & API_RULES and api_models:
        for key in ApiSettings.from_config(study.config["api"]).keys:
            needed.setdefault(key.env, "the API models (api.keys)")
    return needed


def missing_keys(study: Study, rules: set[str]) -> list[str]:
    """One line per key that the jobs of `rules` need and neither the environment nor `.env` holds."""
    out = []
    for env, who in needed_keys(study, rules).items():
        try:
            get_secret(env)
        except MissingSecret:
            out.append(f"{env} is not set: {who} needs it (export it, or put {env}=... in .env)")
    return out


# In the order they ran before they were split: a study with several faults reports the same first one.
CHECKS: tuple[Check, ...] = (
    check_source_passwords,
    check_models_defined,
    check_inoculations_defined,
    check_backdoor_settings,
    check_data_present,
    check_evals,
    check_data_sources,
    check_judge_metrics,
    check_toy_mixing,
    check_plot_condition,
    check_checkpoints,
    check_judge_mode,
    check_judge_budget,
)
