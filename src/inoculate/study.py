"""The study a validated config describes, answered by job, each from plain data so that the
rules stay declarative and every answer is testable:

- `study.grid`: which cells run (models x settings x inoculations x seeds, checkpoints,
  conditions);
- `study.inoculations`: what each inoculation trains with (its prompt, placement, data);
- `study.data`: where every file a rule reads is, and each setting's evals;
- `study.base_models`: each model's spec and training recipe;
- `study.judging`: how answers are judged and what counts as misaligned.

One name throughout: an *inoculation* is a value of the `{inoculation}` wildcard and of the
tables' `inoculation` column, defined under the config key `arms` and chosen by `inoculations`;
`base` (the untrained model) is sampled beside them but not trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from inoculate import tan_evals
from inoculate.backdoor import Trigger
from inoculate.checkpoints import sampled_labels
from inoculate.config import (
    ARCHIVE_SUFFIX,
    BACKDOOR_METRICS,
    BASE_ARM,
    ConfigError,
    DataRef,
    EvalRef,
    Setting,
    download_name,
    source_password,
)
from inoculate.judges.reference import calibration_files, is_published_judge

Cell = tuple[str, str, str, int]  # (model, setting, inoculation, seed)


@dataclass
class Study:
    """A validated config, the settings it names, and the answers to what its jobs need."""

    config: dict
    settings: dict[str, Setting] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.grid = Grid(self)
        self.inoculations = Inoculations(self)
        self.data = DataFiles(self)
        self.base_models = BaseModels(self)
        self.judging = JudgingPolicy(self)

    def backdoor(self, setting: str) -> dict:
        """The setting's `backdoor:` section (persona fraction, distillation, trigger, ...)."""
        spec = self.settings[setting].backdoor
        if spec is None:
            raise ConfigError(f"{self.settings[setting].file}: setting {setting!r} is not a backdoor setting")
        return spec


@dataclass
class Grid:
    """The cells a study runs: models x settings x inoculations x seeds (and the base rows,
    each checkpoint, each test condition)."""

    study: Study

    @property
    def models(self) -> list[str]:
        return list(self.study.config["models"])

    @property
    def setting_names(self) -> list[str]:
        return list(self.study.config["settings"])

    @property
    def inoculations(self) -> list[str]:
        """The trained inoculations, in config order."""
        return list(self.study.config["inoculations"])

    @property
    def inoculations_and_base(self) -> list[str]:
        """Every value `{inoculation}` takes: the base model first (if included), then the trained ones."""
        return ([BASE_ARM] if self.study.config["include_base"] else []) + self.inoculations

    def figure_labels(self) -> dict[str, dict[str, str]]:
        """Display names the study gives its arms and settings (`label:`), for figures."""
        arms = {name: spec["label"] for name, spec in self.study.config["arms"].items() if spec.get("label")}
        settings = {name: s.label for name, s in self.study.settings.items() if s.label}
        return {"arms": arms, "settings": settings}

    @property
    def seeds(self) -> list[int]:
        return list(self.study.config["seeds"])

    def conditions(self) -> dict[str, bool | dict]:
        """Condition name -> whether the inoculation's prompt is present at test time, or the
        condition's whole spec where it also sets a test-time `system_prompt` or a `user_prefix`."""
        return {
            name: c["training_prompt"] if set(c) == {"training_prompt"} else dict(c)
            for name, c in self.study.config["conditions"].items()
        }

    def is_backdoor(self, setting: str) -> bool:
        return self.study.settings[setting].backdoor is not None

    @property
    def backdoor_settings(self) -> list[str]:
        return [s for s in self.setting_names if self.is_backdoor(s)]

    @property
    def standard_settings(self) -> list[str]:
        return [s for s in self.setting_names if not self.is_backdoor(s)]

    def inoculations_for(self, setting: str) -> list[str]:
        """The inoculations a setting trains: one on control data only where the setting has
        control data (and, for published control data not obtainable here, where it is present)."""
        control = self.study.settings[setting].control
        has_control = control is not None and not self.study.data.missing(control)
        needs_control = self.study.inoculations.needs_control
        return [a for a in self.inoculations if has_control or not needs_control(a)]

    def skipped_cells(self) -> list[tuple[str, str]]:
        """(setting, inoculation) pairs left out because the setting has no control data."""
        return [
            (s, a) for s in self.setting_names for a in self.inoculations if a not in self.inoculations_for(s)
        ]

    def cells(self, trained_only: bool = False) -> list[Cell]:
        """(model, setting, inoculation, seed) of every cell; the base rows too unless `trained_only`."""
        base = [] if trained_only or not self.study.config["include_base"] else [BASE_ARM]
        once = self.study.config.get("base_seeds") == "first"  # the untrained model sampled once
        return [
            (m, s, a, seed)
            for m in self.models
            for s in self.setting_names
            for a in base + self.inoculations_for(s)
            for seed in (self.seeds[:1] if once and a == BASE_ARM else self.seeds)
        ]

    def cells_of(self, settings: list[str], trained_only: bool = False) -> list[Cell]:
        return [c for c in self.cells(trained_only) if c[1] in settings]

    def checkpoint_cells(self) -> list[tuple[str, str, str, int, str]]:
        """(model, setting, inoculation, seed, checkpoint) of every trained cell of an
        inoculation setting, per checkpoint."""
        return [
            (*cell, label)
            for cell in self.cells_of(self.standard_settings, trained_only=True)
            for label in self.study.base_models.checkpoint_labels(cell[0])
        ]


@dataclass
class Inoculations:
    """What each inoculation trains with (config key `arms`; a setting may override a prompt)."""

    study: Study

    def spec(self, name: str) -> dict:
        return self.study.config["arms"][name]

    def prompt(self, setting: str, name: str) -> str | list[str] | None:
        """The inoculation prompt in a setting (the setting's override wins); a list is assigned
        round-robin over the training examples."""
        if name == BASE_ARM:
            return None
        prompts = self.study.settings[setting].prompts
        if name in prompts:
            return prompts[name]
        return self.spec(name).get("prompt")

    def placement(self, name: str) -> str:
        return "system" if name == BASE_ARM else self.spec(name)["placement"]

    def on_existing_system(self, setting: str, name: str) -> str:
        return self.study.settings[setting].on_existing_system or self.spec(name)["on_existing_system"]

    def data_split(self, name: str) -> str:
        """Which dataset of the setting it trains on: `train`, `control`, or `mix` (a share of
        harmful rows in a fixed-size set, the control data as the rest)."""
        data = self.spec(name)["data"]
        return "mix" if isinstance(data, dict) else data

    def needs_control(self, name: str) -> bool:
        return self.data_split(name) in ("control", "mix")

    def data_mix(self, name: str) -> dict | None:
        """`{harmful_share, size}` of a mixing inoculation (Tan et al.'s data-ratio baselines), else None."""
        data = self.spec(name)["data"]
        return dict(data) if isinstance(data, dict) else None


@dataclass
class DataFiles:
    """Where each file a rule reads is: data sources, datasets, evals."""

    study: Study

    @property
    def _config(self) -> dict:
        return self.study.config

    def missing(self, ref: DataRef | None) -> bool:
        """A reference to published data that is not on this machine (`published:` names where it is)."""
        return ref is not None and ref.published is not None and not Path(self.resolve(ref)).exists()

    def resolve(self, ref: DataRef) -> str:
        """The path a rule reads for a data reference."""
        if ref.external is not None:
            return str(Path(self._config["external_data_dir"]) / ref.external)
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
        spec = self._config["sources"][name]
        if "url" in spec:
            return f"results/downloads/{name}/{download_name(spec['url'])}"
        if "external" in spec:
            return str(Path(self._config["external_data_dir"]) / spec["external"])
        return spec["path"]

    def is_archive(self, name: str) -> bool:
        return self.source_path(name).endswith(ARCHIVE_SUFFIX)

    def source_dir(self, name: str) -> str:
        """Folder that holds a source's files: decrypted by a rule, or the folder itself."""
        return f"results/sources/{name}" if self.is_archive(name) else self.source_path(name)

    def source_password(self, name: str) -> str | None:
        return source_password(name, self._config["sources"][name])

    def dataset_ref(self, setting: str, split: str) -> DataRef:
        """A setting's data: `train`, `control`, or a backdoor's `persona` examples / `prompts`."""
        s = self.study.settings[setting]
        if split in ("persona", "prompts"):
            return DataRef.from_dict(self.study.backdoor(setting)[split])
        ref = s.train if split == "train" else s.control
        if ref is None:
            raise ConfigError(f"{s.file}: setting {setting!r} has no '{split}' data")
        return ref

    def eval_refs(self, setting: str) -> dict[str, EvalRef]:
        return self.study.settings[setting].evals

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
                spec["tan_eval"] = e.tan_eval
                sampling = {**tan_evals.sampling(spec["path"], e.tan_eval), **sampling}
                judge = judge or tan_evals.metrics(spec["path"], e.tan_eval)
                trait = trait if trait is not None else tan_evals.trait(spec["path"], e.tan_eval)
            if sampling:
                spec["sampling"] = sampling
            if e.conditions is not None:
                spec["conditions"] = list(e.conditions)
            if e.group is not None:
                spec["group"] = e.group
            if judge:
                spec["judge"] = judge
            if trait:
                spec["trait"] = dict(trait)
            specs[name] = spec
        return specs


@dataclass
class BaseModels:
    """Each model's spec (config key `base_models`) and how it trains."""

    study: Study

    def spec(self, model: str) -> dict:
        """`{base, backend, device, dtype, quantization, ...}` of a model name."""
        return dict(self.study.config["base_models"][model])

    def with_backend(self, backend: str) -> list[str]:
        """Every defined model (not only the study's) trained and sampled by `backend`."""
        return [m for m in self.study.config["base_models"] if self.spec(m)["backend"] == backend]

    def api_settings(self) -> dict:
        """Config key `api`, for the models with `backend: openai`."""
        return dict(self.study.config["api"])

    def training(self, model: str) -> dict:
        """`training`, with the model's own `training:` overrides (e.g. a learning-rate sweep)."""
        study_recipe = self.study.config["training"]
        own = self.study.config["base_models"][model].get("training") or {}
        merged = {**study_recipe, **own}
        if "lora" in own:
            merged["lora"] = {**study_recipe["lora"], **own["lora"]}
        return merged

    def checkpoint_labels(self, model: str) -> list[str]:
        """The checkpoints of `training.checkpoints` sampled as their own grid coordinate (the
        final adapter is the usual one); none by default."""
        return sampled_labels(self.training(model)["checkpoints"])


@dataclass
class JudgingPolicy:
    """How a study's answers are judged, and what counts as misaligned."""

    study: Study

    def judge_for(self, setting: str) -> dict:
        """The judge of a setting: the study's, or for a backdoor setting the persona and
        identity metrics with the trigger and wrappers stripped before judging."""
        judge = dict(self.study.config["judge"])
        if not self.study.grid.is_backdoor(setting):
            return judge
        spec = self.study.backdoor(setting)
        if judge["backend"] == "toy":
            return {"backend": "toy_persona", "min_words": judge["min_words"]}
        judge["metrics"] = list(BACKDOOR_METRICS)
        judge["prompts"] = {**judge["prompts"], **spec["judge_prompts"]}
        judge["strip"] = [*judge["strip"], *Trigger.from_config(spec["trigger"]).strip_patterns()]
        return judge

    def criteria(self) -> dict[str, str | dict]:
        """ "setting/eval" -> the criterion of each eval whose setting or own spec sets one
        (the study's `analysis.criterion` holds elsewhere)."""
        out = {}
        for name, setting in self.study.settings.items():
            for eval_name, e in setting.evals.items():
                spec = e.criterion if e.criterion is not None else setting.criterion
                if spec is not None:
                    out[f"{name}/{eval_name}"] = spec
        return out

    def needs_calibration(self) -> bool:
        """Whether the study's judge is other than the published one (gpt-4o-2024-08-06 at
        OpenAI), so that its rates are comparable with published ones only once calibrated.
        The toy judge scores the toy world only: there is nothing published to compare it with."""
        judge = self.study.config["judge"]
        return judge["backend"] != "toy" and not is_published_judge(judge)

    def calibration_files(self) -> list[str]:
        """The judged files (with published scores) that calibration samples from."""
        spec = self.study.config.get("calibration") or {}
        return [
            str(p) for p in calibration_files(spec.get("files", []), self.study.config["external_data_dir"])
        ]

    def calibration_eval(self) -> str | None:
        """The eval file whose judge prompts scored the calibration files."""
        name = (self.study.config.get("calibration") or {}).get("eval")
        if not name:
            return None
        root = self.study.config["external_data_dir"]
        return name if Path(name).is_absolute() else str(Path(root) / name)
