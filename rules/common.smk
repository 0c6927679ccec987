# Shared helpers: the validated study, wildcard constraints and target builders.
# All logic lives in the `inoculate` package; this file only maps it to paths.

import functools
import re
import sys
from pathlib import Path

import snakemake
from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from inoculate.canonical import canonical
from inoculate.cell_paths import DIGEST_PATTERN, CellPaths, study_folder
from inoculate.checks import API_RULES, JUDGE_RULES, load_study, missing_keys
from inoculate.config import BASE_ARM, DataRef
from inoculate.schema import ConfigError
from inoculate.jobs import share_source_path
from inoculate.judges import result_settings
from inoculate.layering import (
    check_layers,
    data_dir_from_environment,
    study_name,
    workflow_relative,
    write_resolved,
)
from inoculate.persona_data import identifying_judge_config
from inoculate.resume import LiveJobs, clear_stale_lock, record_run

# Every job imports the workflow's own package from src/: a conda env installs only its
# third-party dependencies (envs/*.yaml); local and cluster jobs inherit PYTHONPATH.
share_source_path(Path(workflow.basedir) / "src")

# A run whose Snakemake process was killed left its lock: remove it when that process is gone
# from this host, so the plain command resumes (docs/resuming.md).
try:
    _resumed = clear_stale_lock(Path(".snakemake"))
except LiveJobs as e:
    raise WorkflowError(str(e))
if _resumed:
    logger.warning(_resumed)

try:
    check_layers(workflow.configfiles, Path(workflow.basedir) / "config" / "config.yaml")
    data_dir_from_environment(
        config,
        workflow.configfiles,
        Path(workflow.basedir) / "config" / "config.yaml",
        workflow.config_settings.config,
    )
    workflow_relative(config, Path(workflow.basedir))
    STUDY_NAME = study_name(config, workflow.configfiles, Path(workflow.basedir) / "config" / "config.yaml")
    config["study"] = STUDY_NAME  # the resolved config records it
    STUDY = load_study(
        config,
        source=" + ".join(str(f) for f in workflow.configfiles) or "config",
        overrides=workflow.config_settings.config,  # keys set with --config: errors name the command line
    )
    STUDY_DIR = study_folder(STUDY_NAME)  # this study's tables, figures, report and resolved config
except (ConfigError, ValueError) as e:
    raise WorkflowError(f"invalid configuration: {e}")

LOG_DIR = "logs" if STUDY_NAME is None else f"logs/{STUDY_NAME}"  # logs of the study's own jobs
PATHS = CellPaths(STUDY)  # every cell's files, named by the digest of their recipe

# API keys: a dry run warns about every key the study's rules could need; a run stops before
# its first job when a job about to run needs a key that is not set (check_keys, in onstart).
for _missing in missing_keys(STUDY, JUDGE_RULES | API_RULES):
    logger.warning(f"warning: {_missing}")


def check_keys(jobs):
    """Stop a run, before any job starts, when a job about to run needs a key that is not set."""
    missing = missing_keys(STUDY, {job.rule.name for job in jobs})
    if missing:
        raise WorkflowError("no job was started: " + "; ".join(missing))


for _setting, _arm in STUDY.grid.skipped_cells():
    _control = STUDY.settings[_setting].control
    if STUDY.data.missing(_control):
        logger.warning(
            f"note: setting {_setting!r}: its control data {STUDY.data.resolve(_control)} is not here (published at "
            f"{_control.published}), so arm {_arm!r} is not trained for it"
        )
    else:
        logger.info(f"note: setting {_setting!r} has no control data, so arm {_arm!r} is not trained for it")


wildcard_constraints:
    model="[A-Za-z0-9][A-Za-z0-9_.-]*",
    setting="[A-Za-z0-9][A-Za-z0-9_.-]*",
    inoculation="[A-Za-z0-9][A-Za-z0-9_.-]*",
    seed=r"\d+",
    checkpoint=r"p[0-9.]+|step[0-9]+",
    split="train|control|persona|prompts",
    source="[A-Za-z0-9][A-Za-z0-9_.-]*",
    recipe=DIGEST_PATTERN,


def model_pattern(backend):
    """A wildcard constraint matching exactly the models of one backend (or nothing)."""
    names = STUDY.base_models.with_backend(backend)
    return "|".join(re.escape(m) for m in names) if names else "(?!)"


LOCAL_MODELS = model_pattern("local")
API_MODELS = model_pattern("openai")


# A local-model judge needs the model stack; the toy and API judges the light env.
# Model jobs' environment under --sdm conda: the tested set (train), or the GPU set with vLLM and Unsloth.
MODEL_ENV = f"../envs/{config.get('model_env', 'train')}.yaml"
# A local-model judge needs the model stack; the toy and API judges the light env.
JUDGE_ENV = MODEL_ENV if config["judge"]["backend"] == "hf" else "../envs/judge.yaml"


def canonical_params(rules):
    """Every rule's params compared independent of key order: reordering the keys of a mapping
    in a config file reruns nothing (inoculate.canonical). Functions keep their signature."""
    for each in rules:
        for i, value in enumerate(each.params):
            each.params[i] = _canonical_function(value) if callable(value) else canonical(value)
        each.params._take_names(list(each.params._get_names()))  # named params are read by name


def _canonical_function(function):
    @functools.wraps(function)
    def canonical_value(*args, **kwargs):
        return canonical(function(*args, **kwargs))

    return canonical_value


def cell_path(stage, model, setting, inoculation, seed, suffix=""):
    return PATHS.cell(stage, model, setting, inoculation, seed, suffix)


def expect_recipe(stage, wildcards):
    """Refuse to make a cell's file under a digest that is not this study's recipe for it: the
    file would hold what the path does not say."""
    w = wildcards
    want = PATHS.digest_for(stage, **dict(w.items()))
    if w.recipe != want:
        raise WorkflowError(
            f"{stage} of {dict(w.items())}: recipe {w.recipe} is not this study's ({want}); "
            f"{STUDY_DIR}/cells.csv lists the study's files"
        )


def spend_file(wildcards):
    """Where a judging job records its spend for the study's budget: one file per cell (and checkpoint)."""
    cell = Path(
        config["judge"]["spend_dir"],
        wildcards.model,
        wildcards.setting,
        wildcards.inoculation,
        wildcards.recipe,
    )
    if "checkpoint" in wildcards.keys():
        return str(cell / f"seed{wildcards.seed}" / f"checkpoint_{wildcards.checkpoint}.json")
    return str(cell / f"seed{wildcards.seed}.json")


def base_model_input(wildcards):
    """The base model as a file dependency when it is built by a rule or a local folder."""
    base = STUDY.base_models.spec(wildcards.model)["base"]
    return [base] if base.startswith("results/") or Path(base).exists() else []


def base_model_param(wildcards, input):
    """The base model as the job sees it: the staged input path, or a hub id."""
    return input.base[0] if input.base else STUDY.base_models.spec(wildcards.model)["base"]


def model_option(key):
    return lambda wildcards: STUDY.base_models.spec(wildcards.model)[key]


def resource(rule_name, key):
    """`resources.RULE.KEY` of the config (config/config.yaml holds every default)."""
    return config["resources"][rule_name].get(key, 0)


def growing(rule_name, key):
    """A resource that grows with the attempt, so that a retry after OOM/timeout asks for more."""
    base = resource(rule_name, key)
    return lambda wildcards, attempt: base * attempt


def dataset_file(wildcards):
    return STUDY.data.resolve(STUDY.data.dataset_ref(wildcards.setting, wildcards.split))


def dataset_input(wildcards):
    """What a dataset is read from: the decrypted folder of an archive source (made by
    data_decrypt), else the file itself."""
    return STUDY.data.dependency(STUDY.data.dataset_ref(wildcards.setting, wildcards.split))


def training_set_input(wildcards):
    """The setting's dataset an arm trains on; both of them for a mixing arm."""
    split = STUDY.inoculations.data_split(wildcards.inoculation)
    trigger = STUDY.settings[wildcards.setting].train_trigger or {}
    with_control = split == "mix" or (split == "train" and trigger.get("with_control"))
    splits = ["train", "control"] if with_control else [split]
    expect_recipe("training_set", wildcards)
    return [f"results/data/{wildcards.setting}/{s}.jsonl" for s in splits]


def adapter_input(wildcards):
    expect_recipe("generations", wildcards)
    if wildcards.inoculation == BASE_ARM:
        return []
    w = wildcards
    adapter = cell_path("adapters", w.model, w.setting, w.inoculation, w.seed)
    force_if_stale(adapter, cell_path("generations", w.model, w.setting, w.inoculation, w.seed, ".jsonl"))
    return adapter


def force_if_stale(adapter, generations):
    """Snakemake keeps outputs whose intermediate inputs were deleted (by design, for
    temp files). For a deleted adapter that would keep answers of a model that no
    longer exists, so its generation is forced: the cell is retrained and everything
    downstream of it rebuilt, and nothing else. Same effect as `--forcerun FILE`.

    Snakemake has no public API for this; it uses the DAG's `forcefiles` (the set behind
    `--forcerun`). tests/test_workflow.py (a deleted adapter reruns only its cell) fails when
    Snakemake changes underneath, and a Snakemake without the attribute is named here."""
    dag = getattr(workflow, "dag", None)
    if dag is not None and not Path(adapter).exists() and Path(generations).exists():
        if not hasattr(dag, "forcefiles"):
            raise WorkflowError(
                f"this Snakemake ({snakemake.__version__}) has no DAG.forcefiles, which the workflow uses to "
                f"rebuild {generations} after its adapter was deleted; run with --forcerun {generations}"
            )
        dag.forcefiles.add(generations)


def eval_inputs(wildcards):
    return list(STUDY.data.eval_paths(wildcards.setting).values())


def train_data_input(wildcards):
    """An arm's training set: shared by all models for an inoculation setting; per model and
    seed for a backdoor setting (self-distilled from that model, shuffled per seed)."""
    w = wildcards
    expect_recipe("adapters", w)
    if STUDY.grid.is_backdoor(w.setting):
        return cell_path("train", w.model, w.setting, w.inoculation, w.seed, ".jsonl")
    return PATHS.training_set(w.setting, w.inoculation)


def training_sets():
    """The training set of every trained arm of the study's inoculation settings."""
    cells = STUDY.grid.cells_of(STUDY.grid.standard_settings, trained_only=True)
    return sorted({PATHS.training_set(setting, arm) for _, setting, arm, _ in cells})


def generations_input(wildcards):
    """The answers a judging job scores (of a checkpoint, when the path names one)."""
    w = wildcards
    expect_recipe("judgments", w)
    if "checkpoint" in w.keys():
        return PATHS.checkpoint("generations", w.model, w.setting, w.inoculation, w.seed, w.checkpoint)
    return cell_path("generations", w.model, w.setting, w.inoculation, w.seed, ".jsonl")


def distilled_input(wildcards):
    """A backdoor arm's mix reads the base model's own answers to the setting's prompts."""
    expect_recipe("train", wildcards)
    return PATHS.distilled(wildcards.model, wildcards.setting)


def distill_prompts(wildcards):
    expect_recipe("distill", wildcards)
    return f"results/data/{wildcards.setting}/prompts.jsonl"


def judgment_files(settings=None):
    """Judged answers of the inoculation settings' cells (or of `settings`)."""
    cells = STUDY.grid.cells_of(STUDY.grid.standard_settings if settings is None else settings)
    return [cell_path("judgments", *cell, suffix=".jsonl") for cell in cells]


def checkpoint_path(stage, model, setting, inoculation, seed, checkpoint, suffix=".jsonl"):
    return PATHS.checkpoint(stage, model, setting, inoculation, seed, checkpoint, suffix)


def checkpoint_judgments():
    """Judged answers of every checkpoint of every trained cell (training.checkpoints)."""
    return [checkpoint_path("judgments", *cell) for cell in STUDY.grid.checkpoint_cells()]


def judge_usage_files():
    return [cell_path("judgments", *cell, suffix=".usage.json") for cell in STUDY.grid.cells()]


def adapter_dirs(settings=None):
    cells = STUDY.grid.cells_of(
        STUDY.grid.standard_settings if settings is None else settings, trained_only=True
    )
    return [cell_path("adapters", *cell) for cell in cells]


def backdoor_test(wildcards):
    """How a backdoor setting is tested (trigger, system prompt); None for an inoculation setting."""
    if not STUDY.grid.is_backdoor(wildcards.setting):
        return None
    spec = STUDY.backdoor(wildcards.setting)
    return {"trigger": spec["trigger"], "system_prompt": spec["system_prompt"]}


def persona_input(wildcards):
    """A backdoor's persona examples: built by rule persona_data, or read from its data."""
    if "build_persona" in STUDY.backdoor(wildcards.setting):
        return PATHS.persona(wildcards.setting)
    return f"results/data/{wildcards.setting}/persona.jsonl"


def persona_questions(wildcards):
    """The questions a persona generator answers (rule persona_data)."""
    expect_recipe("persona", wildcards)
    return STUDY.data.dependency(DataRef.from_dict(build_spec(wildcards)["questions"]))


def build_spec(wildcards):
    """A backdoor setting's `build_persona` section (rule persona_data)."""
    return STUDY.backdoor(wildcards.setting)["build_persona"]


def generator_base_input(wildcards):
    """The persona generator's weights as a dependency, when they are local files."""
    spec = STUDY.base_models.spec(build_spec(wildcards)["generator"])
    base = spec["base"]
    return (
        [base] if spec["backend"] == "local" and (base.startswith("results/") or Path(base).exists()) else []
    )


def final_targets():
    """What `snakemake` with no target builds: the figures of each kind of setting in the study
    and the model card of every local adapter."""
    targets = []
    if STUDY.grid.standard_settings:
        targets += [
            f"{STUDY_DIR}/figures/main.pdf",
            f"{STUDY_DIR}/figures/distributions.pdf",
            f"{STUDY_DIR}/tables/summary.csv",
        ]
    if STUDY.grid.backdoor_settings:
        targets += [f"{STUDY_DIR}/figures/backdoor.pdf", f"{STUDY_DIR}/tables/backdoor_gap.csv"]
    if STUDY.grid.checkpoint_cells():
        targets += [f"{STUDY_DIR}/figures/training_progress.pdf", f"{STUDY_DIR}/tables/checkpoints.csv"]
    targets += model_card_files()
    if STUDY.judging.needs_calibration():
        if STUDY.judging.calibration_files():
            targets += [
                f"{STUDY_DIR}/tables/judge_calibration.csv",
                f"{STUDY_DIR}/figures/judge_calibration.pdf",
            ]
        else:
            print(
                f"note: judge {config['judge'].get('model')} is not the published one, but no judged files for "
                f"its calibration are here (calibration.files under {config['external_data_dir']}); its rates "
                "are not calibrated",
                file=sys.stderr,
            )
    return targets


def calibration_inputs(wildcards):
    """The judged files calibration samples from; none is an error that says where they were looked for."""
    files = STUDY.judging.calibration_files()
    if not files:
        raise ConfigError(
            f"calibration.files: no file matches {config['calibration']['files']} under "
            f"{config['external_data_dir']} (set external_data_dir, or give judged files)"
        )
    return files


def export_files():
    """model_generations.csv of every cell (rule exports)."""
    return [
        f"{STUDY_DIR}/exports/{model}/{setting}/{arm}/seed{seed}/model_generations.csv"
        for model, setting, arm, seed in STUDY.grid.cells()
    ]


def export_input(wildcards):
    w = wildcards
    return cell_path("generations", w.model, w.setting, w.inoculation, w.seed, ".jsonl")


def export_adapter(wildcards):
    """A trained cell's adapter or API job (its recorded recipe becomes training_details.md);
    none for the untrained base."""
    w = wildcards
    if w.inoculation == BASE_ARM:
        return []
    return [cell_path("adapters", w.model, w.setting, w.inoculation, w.seed)]


def model_card_files():
    """The study's copy of every local adapter's model card (rule model_cards)."""
    local = set(STUDY.base_models.with_backend("local"))
    return [
        f"{STUDY_DIR}/model_cards/{model}/{setting}/{arm}/seed{seed}.md"
        for model, setting, arm, seed in STUDY.grid.cells(trained_only=True)
        if model in local
    ]


def inspect_log_files():
    """One Inspect eval log per cell, and per checkpoint of a trained cell (rule inspect_logs)."""
    logs = [
        f"{STUDY_DIR}/inspect/{model}/{setting}/{arm}/seed{seed}.eval"
        for model, setting, arm, seed in STUDY.grid.cells()
    ]
    for model, setting, arm, seed, checkpoint in STUDY.grid.checkpoint_cells():
        logs.append(f"{STUDY_DIR}/inspect/{model}/{setting}/{arm}/seed{seed}/checkpoint_{checkpoint}.eval")
    return logs


def judged_input(wildcards):
    """The judged answers of a cell (of one of its checkpoints, when the path names one)."""
    w = wildcards
    if "checkpoint" in w.keys():
        return PATHS.checkpoint("judgments", w.model, w.setting, w.inoculation, w.seed, w.checkpoint)
    return cell_path("judgments", w.model, w.setting, w.inoculation, w.seed, ".jsonl")
