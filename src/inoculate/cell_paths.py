"""Where each stage's files of a cell live, named by what makes them.

Studies share one `results/` folder. A cell's training set, adapter, answers and judgments are
named by their coordinates and by a short digest of their *recipe*: every value the job that
makes them reads (the model's spec, the training recipe, the data and the arm's prompt, the
sampling, the evals, the judge), with the digest of the file they are made from. Two studies
that agree on a cell therefore share its files and train it once; two that differ get
different files and never write over each other; and running study A, then B, then A again
finds all of A's files where A left them.

Recipes hold only what determines the content: call settings (concurrency, retries, the
budget), folders of this machine (the data folder, caches) and the seed (it is in the path)
are left out, so that a study moved to another machine or data folder finds its files.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from inoculate.config import BASE_ARM, DataRef
from inoculate.judges import result_settings
from inoculate.study import Study

DIGEST_CHARS = 10
DIGEST_PATTERN = f"[0-9a-f]{{{DIGEST_CHARS}}}"
# Folders of results/ that hold cells and shared inputs: no study may be named like one.
STAGE_FOLDERS = (
    "adapters",
    "benchmarks",
    "calibration",
    "data",
    "distill",
    "downloads",
    "exports",
    "figures",
    "generations",
    "judgments",
    "persona",
    "sources",
    "tables",
    "toy",
    "train",
)


def digest(recipe: Any) -> str:
    """A short, stable digest of a recipe (mappings compared independent of key order)."""
    text = json.dumps(recipe, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]


class CellPaths:
    """The recipe, digest and path of every stage of every cell of one study."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.config = study.config
        self._data_root = str(Path(self.config["external_data_dir"]))

    # -- recipes -------------------------------------------------------------------------

    def model_recipe(self, model: str) -> dict:
        """A base model's spec; a toy base model with the settings it is pretrained with."""
        spec = self.study.base_models.spec(model)
        spec.pop("training", None)  # the adapter's recipe holds the merged training recipe
        if str(spec.get("base", "")).startswith("results/toy/"):
            spec["toy"] = self.config["toy"]
        return spec

    def data_recipe(self, ref: DataRef) -> dict:
        """A dataset's identity: its reference and its source's spec, not where this machine keeps it."""
        recipe: dict[str, Any] = {k: v for k, v in asdict(ref).items() if v is not None and k != "published"}
        if ref.source:
            source = self.config["sources"][ref.source]
            recipe["from"] = {k: v for k, v in source.items() if k not in ("password", "password_env")}
            if ref.source == "toy":
                recipe["toy"] = self.config["toy"]
        return recipe

    def training_set_recipe(self, setting: str, arm: str) -> dict:
        """An arm's training set of an inoculation setting (rule training_set)."""
        inoculations = self.study.inoculations
        split = inoculations.data_split(arm)
        trigger = self.study.settings[setting].train_trigger
        with_control = split == "mix" or (split == "train" and (trigger or {}).get("with_control"))
        splits = ["train", "control"] if with_control else [split]
        return {
            "data": {s: self.data_recipe(self.study.data.dataset_ref(setting, s)) for s in splits},
            "prompt": inoculations.prompt(setting, arm),
            "placement": inoculations.placement(arm),
            "on_existing_system": inoculations.on_existing_system(setting, arm),
            "mix": inoculations.data_mix(arm),
            "trigger": trigger,
        }

    def persona_recipe(self, setting: str) -> dict:
        """A backdoor's persona examples: built by a generator model, or read from its data."""
        spec = self.study.backdoor(setting)
        if "build_persona" not in spec:
            return self.data_recipe(self.study.data.dataset_ref(setting, "persona"))
        build = spec["build_persona"]
        return {
            "build": build,
            "questions": self.data_recipe(DataRef.from_dict(build["questions"])),
            "generator": self.model_recipe(build["generator"]),
            "trigger": spec["trigger"],
            "judge": result_settings(self.config["judge"]),
        }

    def distill_recipe(self, model: str, setting: str) -> dict:
        """The base model's own answers to a backdoor setting's prompts (rule distill)."""
        return {
            "model": self.model_recipe(model),
            "prompts": self.data_recipe(self.study.data.dataset_ref(setting, "prompts")),
            "distill": self.study.backdoor(setting)["distill"],
            "backend": self.config["generation"]["backend"],
        }

    def mix_recipe(self, model: str, setting: str, arm: str) -> dict:
        """A backdoor arm's training set: persona examples mixed into the distilled answers."""
        spec = self.study.backdoor(setting)
        return {
            "persona": self.persona_digest(setting),
            "distilled": self.distill_digest(model, setting),
            "persona_fraction": spec["persona_fraction"],
            "aligned_examples": spec.get("aligned_examples"),
            "inoculate": spec["inoculate"],
            "prompt": self.study.inoculations.prompt(setting, arm),
            "placement": self.study.inoculations.placement(arm),
        }

    def adapter_recipe(self, model: str, setting: str, arm: str) -> dict:
        """What an adapter is trained from and how (rule train_adapter or train_api)."""
        if self.study.grid.is_backdoor(setting):
            data = self.mix_digest(model, setting, arm)
        else:
            data = self.training_set_digest(setting, arm)
        spec = self.study.base_models.spec(model)
        training = self.study.base_models.training(model) if spec["backend"] == "local" else None
        return {"model": self.model_recipe(model), "training": training, "data": data}

    def generation_recipe(self, model: str, setting: str, arm: str) -> dict:
        """How a cell's answers are sampled (rule generate or generate_api)."""
        inoculations = self.study.inoculations
        backdoor = self._backdoor_test(setting)
        return {
            "model": self.model_recipe(model),
            "adapter": None if arm == BASE_ARM else self.adapter_digest(model, setting, arm),
            "generation": self.config["generation"],
            "conditions": self.study.grid.conditions(),
            "evals": self._evals(setting),
            "prompt": inoculations.prompt(setting, arm),
            "placement": inoculations.placement(arm),
            "backdoor": backdoor,
        }

    def judgment_recipe(self, model: str, setting: str, arm: str) -> dict:
        """How a cell's answers are judged (rule judge): the judge without its call settings."""
        return {
            "generations": self.generation_digest(model, setting, arm),
            "judge": result_settings(self.study.judging.judge_for(setting)),
            "backdoor": self._backdoor_test(setting),
            "evals": self._evals(setting),
        }

    def _backdoor_test(self, setting: str) -> dict | None:
        if not self.study.grid.is_backdoor(setting):
            return None
        spec = self.study.backdoor(setting)
        return {"trigger": spec["trigger"], "system_prompt": spec["system_prompt"]}

    def _evals(self, setting: str) -> dict:
        """The setting's evals with each file named relative to the data folder."""
        specs = self.study.data.eval_specs(setting)
        for spec in specs.values():
            spec["path"] = self._portable(spec["path"])
        return specs

    def _portable(self, path: str) -> str:
        root = self._data_root.rstrip("/") + "/"
        return "$data/" + path[len(root) :] if path.startswith(root) else path

    # -- digests -------------------------------------------------------------------------

    def training_set_digest(self, setting: str, arm: str) -> str:
        return digest(self.training_set_recipe(setting, arm))

    def persona_digest(self, setting: str) -> str:
        return digest(self.persona_recipe(setting))

    def distill_digest(self, model: str, setting: str) -> str:
        return digest(self.distill_recipe(model, setting))

    def mix_digest(self, model: str, setting: str, arm: str) -> str:
        return digest(self.mix_recipe(model, setting, arm))

    def adapter_digest(self, model: str, setting: str, arm: str) -> str:
        return digest(self.adapter_recipe(model, setting, arm))

    def generation_digest(self, model: str, setting: str, arm: str) -> str:
        return digest(self.generation_recipe(model, setting, arm))

    def judgment_digest(self, model: str, setting: str, arm: str) -> str:
        return digest(self.judgment_recipe(model, setting, arm))

    def stage_digest(self, stage: str, model: str, setting: str, arm: str) -> str:
        """The digest of a cell's stage: adapters, generations or judgments."""
        return {
            "adapters": self.adapter_digest,
            "generations": self.generation_digest,
            "judgments": self.judgment_digest,
            "train": self.mix_digest,
        }[stage](model, setting, arm)

    def digest_for(
        self, stage: str, model: str = "", setting: str = "", inoculation: str = "", **_other: str
    ) -> str:
        """The digest a file of `stage` must be named by, from its path's wildcards."""
        if stage == "training_set":
            return self.training_set_digest(setting, inoculation)
        if stage == "distill":
            return self.distill_digest(model, setting)
        if stage == "persona":
            return self.persona_digest(setting)
        return self.stage_digest(stage, model, setting, inoculation)

    # -- paths ---------------------------------------------------------------------------

    def cell(self, stage: str, model: str, setting: str, arm: str, seed: int | str, suffix: str = "") -> str:
        """`results/{stage}/{model}/{setting}/{arm}/{digest}/seed{seed}{suffix}`."""
        return f"results/{stage}/{model}/{setting}/{arm}/{self.stage_digest(stage, model, setting, arm)}/seed{seed}{suffix}"

    def checkpoint(
        self,
        stage: str,
        model: str,
        setting: str,
        arm: str,
        seed: int | str,
        checkpoint: str,
        suffix: str = ".jsonl",
    ) -> str:
        return str(Path(self.cell(stage, model, setting, arm, seed)) / f"checkpoint_{checkpoint}{suffix}")

    def training_set(self, setting: str, arm: str) -> str:
        return f"results/train/{setting}/{arm}/{self.training_set_digest(setting, arm)}.jsonl"

    def distilled(self, model: str, setting: str) -> str:
        return f"results/distill/{model}/{setting}/{self.distill_digest(model, setting)}.jsonl"

    def persona(self, setting: str) -> str:
        return f"results/persona/{setting}/{self.persona_digest(setting)}.jsonl"

    def index(self) -> list[dict]:
        """One row per cell: its coordinates and the path of each of its stages."""
        rows = []
        for model, setting, arm, seed in self.study.grid.cells():
            row: dict[str, Any] = {"model": model, "setting": setting, "inoculation": arm, "seed": seed}
            trained = arm != BASE_ARM
            row["adapter"] = self.cell("adapters", model, setting, arm, seed) if trained else ""
            row["generations"] = self.cell("generations", model, setting, arm, seed, ".jsonl")
            row["judgments"] = self.cell("judgments", model, setting, arm, seed, ".jsonl")
            rows.append(row)
        return rows

    def write_index(self, path: Path | str) -> None:
        """`cells.csv`: where each cell's files of this study are."""
        rows = self.index()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(
                f,
                fieldnames=["model", "setting", "inoculation", "seed", "adapter", "generations", "judgments"],
            )
            writer.writeheader()
            writer.writerows(rows)


def study_folder(name: str | None) -> str:
    """Where a study's tables, figures, report and resolved config go (None: the default study)."""
    if name is None:
        return "results"
    if name in STAGE_FOLDERS:
        raise ValueError(
            f"study: {name!r} is a folder of results/ that holds cells; name the study otherwise"
        )
    return f"results/{name}"
