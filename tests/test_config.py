import copy

import pytest
import yaml

from inoculate.checks import load_study
from inoculate.config import BASE_ARM, ConfigError


@pytest.fixture
def config(repo, monkeypatch):
    monkeypatch.chdir(repo)
    return yaml.safe_load((repo / "config" / "config.yaml").read_text())


def test_default_config_is_valid_and_spans_the_grid(config):
    study = load_study(config, "config/config.yaml")
    assert study.grid.inoculations_and_base[0] == BASE_ARM
    assert len(study.grid.cells()) == len(config["settings"]) * (len(config["inoculations"]) + 1) * len(
        config["seeds"]
    )
    assert study.grid.cells()[0] == ("toy", "toy_cooking", BASE_ARM, 0)
    assert study.inoculations.prompt("toy_cooking", "task_specific") == "You give harmful cooking advice."
    assert study.inoculations.prompt("toy_cooking", "none") is None
    assert study.inoculations.prompt("toy_cooking", "general") == "You are a malicious evil assistant."


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda c: c["training"].update(learning_rate=-1),
            r"config\.yaml: key 'training\.learning_rate': -1 is less than or equal",
        ),
        (lambda c: c.update(seeds="0"), r"key 'seeds': '0' is not of type 'array'"),
        (lambda c: c.update(colour="red"), r"key 'colour': unknown key \(known keys: "),
        (lambda c: c.update(seed=[0]), r"key 'seed': unknown key \(did you mean 'seeds'\?\)"),
        (
            lambda c: c.update(judge={"backend": "opneai"}),
            r"key 'judge\.backend': 'opneai' is not one of \['toy', 'openai', 'hf'\]$",
        ),
        (lambda c: c["generation"].update(top_p=2), r"key 'generation\.top_p'"),
        (lambda c: c.update(inoculations=["none", "base"]), r"key 'inoculations\.1'"),
        (lambda c: c.update(inoculations=["none", "mystery"]), r"arm 'mystery' is not defined under 'arms'"),
        (
            lambda c: c.update(models=["gpt-9"]),
            r"key 'models': model 'gpt-9' is not defined under 'base_models'",
        ),
        (
            lambda c: c.update(settings=["nope"]),
            r"no file config/settings/nope\.yaml.*available: .*toy_cooking",
        ),
        (lambda c: c["plot"].update(condition="elsewhere"), r"key 'plot\.condition'"),
        (
            lambda c: c["conditions"].update(deployment=None, training_prompt=None),
            r"key 'conditions': every condition",
        ),
        (
            lambda c: c["conditions"].update(x={"training_prompt": False, "system_prompt": "  "}),
            r"key 'conditions\.x\.system_prompt': '  ' is only whitespace",
        ),
        (
            lambda c: c["judge"].update(mode="batch"),
            r"key 'judge.mode' is batch, but key 'judge.backend' is 'toy'",
        ),
        (
            lambda c: c["training"].update(checkpoints=[1.5]),
            r"key 'training.checkpoints': fraction 1.5 is not in",
        ),
        (
            lambda c: c["resources"].update(train={"gpu": 1}),
            r"key 'resources.train' is now 'resources.train_adapter'",
        ),
        (lambda c: c.update(seeds=[0, 2**64]), r"key 'seeds\.1': 18446744073709551616 is greater than"),
        (lambda c: c.update(seeds=[10**23]), r"key 'seeds\.0'"),
        (lambda c: c["training"].update(epochs=1e300), r"key 'training\.epochs': 1e\+300 is greater than"),
        (
            lambda c: c["judge"].update(backend="openai", model="m", budget_usd=5),
            r"key 'judge\.budget_usd' is set but key 'judge\.price' is not",
        ),
        (
            lambda c: c["judge"].update(
                backend="openai", model="m", metrics=[{"name": "aligned", "tempalte": "{question} {answer}"}]
            ),
            r"key 'judge\.metrics\.0': judge metric 'aligned': unknown key 'tempalte' \(did you mean 'template'\?\)",
        ),
    ],
)
def test_bad_values_name_the_file_and_key(config, edit, message):
    bad = copy.deepcopy(config)
    edit(bad)
    with pytest.raises(ConfigError, match=message):
        load_study(bad, "config/config.yaml")


def test_a_setting_must_give_a_prompt_the_arm_lacks(config, tmp_path):
    (tmp_path / "s.yaml").write_text(
        "train: {path: results/toy/x.jsonl}\nevals: {e: {path: results/toy/evals/e.yaml, distribution: out}}\n"
    )
    config.update(settings=["s"], settings_dir=str(tmp_path))
    with pytest.raises(ConfigError, match=r"s\.yaml: key 'prompts\.task_specific'"):
        load_study(config, "config/config.yaml")


def test_bad_setting_file_names_file_and_key(config, tmp_path):
    (tmp_path / "s.yaml").write_text(
        "train: {path: x.jsonl}\nevals: {e: {path: e.yaml, distribution: sideways}}\n"
    )
    config.update(settings=["s"], settings_dir=str(tmp_path), inoculations=["none"])
    with pytest.raises(ConfigError, match=r"s\.yaml: key 'evals\.e\.distribution'"):
        load_study(config, "config/config.yaml")


def test_control_arm_only_where_a_setting_has_control_data(config, tmp_path):
    evals = "evals: {e: {path: results/toy/evals/e.yaml, distribution: out}}\n"
    (tmp_path / "s.yaml").write_text("train: {path: results/toy/x.jsonl}\n" + evals)
    (tmp_path / "c.yaml").write_text(
        "train: {path: results/toy/x.jsonl}\ncontrol: {path: results/toy/y.jsonl}\n" + evals
    )
    config.update(
        settings=["s", "c"], settings_dir=str(tmp_path), inoculations=["none", "control"], seeds=[0]
    )
    study = load_study(config, "config/config.yaml")
    assert study.grid.skipped_cells() == [("s", "control")]
    assert [(s, a) for _, s, a, _ in study.grid.cells()] == [
        ("s", "base"),
        ("s", "none"),
        ("c", "base"),
        ("c", "none"),
        ("c", "control"),
    ]


def test_password_from_environment(config, monkeypatch):
    config["sources"]["toy"] = {"path": "x.zip.enc", "password_env": "TOY_PW"}
    study = load_study(config, "config/config.yaml")
    monkeypatch.delenv("TOY_PW", raising=False)
    with pytest.raises(ConfigError, match="TOY_PW is not set"):
        study.data.source_password("toy")
    monkeypatch.setenv("TOY_PW", "secret")
    assert study.data.source_password("toy") == "secret"
    assert study.data.source_dir("toy") == "results/sources/toy"


def test_cli_strings_are_read_as_the_schema_types(config):
    config["seeds"] = ["0", "1", "2", "3"]
    config["include_base"] = "false"
    study = load_study(config, "config/config.yaml")
    assert study.grid.seeds == [0, 1, 2, 3] and study.grid.inoculations_and_base[0] != BASE_ARM


def test_a_malformed_eval_file_fails_before_any_job(config, tmp_path):
    """An eval file without paraphrases is found when the study is loaded (the DAG is built, or
    `inoculate doctor` runs), not at generation after every adapter has trained."""
    (tmp_path / "bad_evals.yaml").write_text("- {id: q1, samples_per_paraphrase: 2}\n")
    (tmp_path / "s.yaml").write_text(
        f"train: {{path: results/toy/x.jsonl}}\nevals: {{e: {{path: {tmp_path / 'bad_evals.yaml'}, distribution: out}}}}\n"
    )
    config.update(settings=["s"], settings_dir=str(tmp_path), inoculations=["none"])
    config["judge"] = {"backend": "openai", "model": "m"}  # a real eval file: not the toy judge's world
    with pytest.raises(
        ConfigError, match=r"s\.yaml: key 'evals\.e': .*bad_evals\.yaml: entry 0 \(q1\): 'paraphrases'"
    ):
        load_study(config, "config/config.yaml")


def test_two_study_files_are_not_merged_silently(repo, tmp_path):
    from inoculate.layering import check_layers

    default = repo / "config/config.yaml"
    backdoor, arms = (
        repo / "config/experiments/toy_backdoor.yaml",
        repo / "config/experiments/toy_all_arms.yaml",
    )
    with pytest.raises(
        ConfigError,
        match=r"toy_all_arms\.yaml is given after .*toy_backdoor\.yaml.*keys both set: "
        r"inoculations, seeds, settings.*overlay_of: toy_backdoor",
    ):
        check_layers([default, backdoor, arms], default)
    overlay = tmp_path / "more_seeds.yaml"
    overlay.write_text("overlay_of: toy_backdoor\nseeds: [0, 1, 2, 3]\n")
    check_layers([default, backdoor, overlay], default)  # declared: accepted
    check_layers([default, backdoor], default)  # one study: nothing to refuse


def test_a_personal_file_layers_on_any_study_and_the_data_dir_may_come_from_the_environment(
    repo, tmp_path, monkeypatch
):
    from inoculate.layering import check_layers, data_dir_from_environment

    default, study = repo / "config/config.yaml", repo / "config/experiments/toy_backdoor.yaml"
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        "external_data_dir: /data/em\njudge: {cache_dir: /scratch/judge}\nresources: {generate: {gpu: 2}}\n"
    )
    check_layers([default, study, mine], default)  # machine-local keys only: no overlay_of needed
    (tmp_path / "more.yaml").write_text("external_data_dir: /data/em\nseeds: [0]\n")
    with pytest.raises(ConfigError, match="keys both set"):  # a study key: it is a study
        check_layers([default, study, tmp_path / "more.yaml"], default)
    monkeypatch.setenv("INOCULATE_DATA", "/from/env")
    config = {"external_data_dir": "data"}
    data_dir_from_environment(config, [default, study], default)
    assert config["external_data_dir"] == "/from/env"  # over the default config's value
    config = {"external_data_dir": "/data/em"}
    data_dir_from_environment(config, [default, study, mine], default)
    assert config["external_data_dir"] == "/data/em"  # a file that sets it wins
    data_dir_from_environment(config, [default], default, overrides={"external_data_dir": "/cli"})
    assert config["external_data_dir"] == "/data/em"  # and so does --config


def _repeated_defaults(instance, schema: dict, root: dict, path: str = "") -> list[str]:
    """Keys of `instance` set to exactly the default the schema gives them."""
    from inoculate.schema import resolve_ref

    schema = resolve_ref(schema, root)
    if not isinstance(instance, dict) or schema.get("x-defaults") is False:
        return []
    found = []
    props = schema.get("properties", {})
    for key, value in instance.items():
        sub = props.get(key, schema.get("additionalProperties"))
        if not isinstance(sub, dict):
            continue
        if "default" in resolve_ref(sub, root) and value == resolve_ref(sub, root)["default"]:
            found.append(f"{path}{key}")
        found += _repeated_defaults(value, sub, root, f"{path}{key}.")
    return found


def test_every_default_has_one_home_the_schema(repo, config):
    """config/config.yaml (under every study) holds the default study's choices, never a schema
    default again; the settings classes take theirs from the schema; a loaded study has every
    default filled. (A file reproducing a study may state a published value that equals one.)"""
    from dataclasses import asdict

    from inoculate.api.batch import BatchSettings
    from inoculate.api.settings import ApiSettings
    from inoculate.sampling_plan import GenerationSettings
    from inoculate.schema import SCHEMA_DIR, schema_defaults
    from inoculate.train import TrainSettings

    schema = yaml.safe_load((SCHEMA_DIR / "config.schema.yaml").read_text())
    assert _repeated_defaults(copy.deepcopy(config), schema, schema) == []
    recipe = TrainSettings(learning_rate=1e-3, epochs=1.0, batch_size=16)
    assert {**asdict(recipe), "learning_rate": 0, "epochs": 0, "batch_size": 0} == {
        **schema_defaults("$defs", "training"),
        "learning_rate": 0,
        "epochs": 0,
        "batch_size": 0,
    }
    assert asdict(GenerationSettings()) == schema_defaults("generation")
    assert asdict(BatchSettings()) == schema_defaults("$defs", "batch")
    api = schema_defaults("api")
    assert asdict(ApiSettings()) == {
        **api,
        "keys": [{"env": "OPENAI_API_KEY", "organization": None, "project": None}],
    }

    from inoculate.stats import CONFIDENCE, N_BOOT, RNG_SEED

    analysis = schema_defaults("analysis")
    assert (N_BOOT, CONFIDENCE, RNG_SEED) == (
        analysis["bootstrap_resamples"],
        analysis["confidence"],
        analysis["rng_seed"],
    )

    study = load_study(config, "config/config.yaml")
    assert study.config["analysis"] == analysis and study.config["calibration"]["per_file"] == 50
    assert study.config["toy"] == {"conversations": 6000, "epochs": 1.0, "train_examples": 256, "seed": 0}
    assert (
        study.base_models.training("toy")["lora"]["r"] == 8
        and study.base_models.training("toy")["scheduler"] == "linear"
    )
    assert study.config["api"]["cache_dir"] == "results/api_cache"
    assert (
        study.base_models.spec("toy")["device"] == "auto"
        and study.inoculations.spec("general")["placement"] == "system"
    )
    assert study.config["judge"] == {
        "backend": "toy",
        "min_words": 4,
        "metrics": ["aligned", "coherent"],
        "spend_dir": "results/judge_spend",
        "mode": "sync",
    }  # a backend's own defaults only: the toy judge gets none of the OpenAI judge's


def test_a_models_training_overrides_keep_the_studys_other_values(config):
    """Defaults fill the study's `training`, never a model's overrides of it: an override
    of the learning rate keeps the study's max_length and LoRA rank."""
    config["training"].update(max_length=1024, lora={"r": 32})
    config["base_models"]["toy"]["training"] = {"learning_rate": 5e-4, "lora": {"alpha": 8}}
    study = load_study(config, "config/config.yaml")
    recipe = study.base_models.training("toy")
    assert recipe["learning_rate"] == 5e-4 and recipe["max_length"] == 1024
    assert recipe["lora"] == {**recipe["lora"], "r": 32, "alpha": 8, "dropout": 0.0}


def test_backdoor_defaults_come_from_the_setting_schema(config):
    config.update(models=["toy-persona"], settings=["toy_persona_built"], inoculations=["none"])
    study = load_study(config, "config/config.yaml")
    spec = study.backdoor("toy_persona_built")
    assert spec["persona_fraction"] == 0.1 and spec["inoculate"] == "persona" and spec["persona_min"] == 50
    assert spec["trigger"]["start"] == "<START>" and spec["distill"]["max_prompts"] is None
    assert (
        spec["build_persona"]["max_identifying"] == 50 and spec["build_persona"]["generation"]["top_p"] == 1.0
    )


def test_config_files_are_read_strictly(repo, tmp_path):
    """What Snakemake's own YAML reader lets pass: a key given twice (it keeps the last), aliases
    that expand a few lines into megabytes, a file that is not UTF-8: each is an error naming
    the file (and line)."""
    from inoculate.io import InputError
    from inoculate.layering import check_layers

    default = repo / "config" / "config.yaml"
    cases = {
        "twice.yaml": (
            "seeds: [0]\ntraining:\n  epochs: 1\n  epochs: 2\n",
            r"twice.yaml: line 4: key 'epochs' is given twice",
        ),
        "bomb.yaml": (
            "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n",
            r"bomb.yaml: its aliases expand it to more than 10 times its text",
        ),
        "latin1.yaml": (b"description: caf\xe9\n", r"latin1.yaml: not UTF-8 text"),
        "broken.yaml": ("seeds: [0, 1\n", r"broken.yaml:2: not valid YAML"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(InputError, match=message):
            check_layers([default, path], default)


def test_every_schema_error_is_reported_at_once_naming_where_it_was_set(config):
    """Three mistakes, three lines; a key set with --config is the command line's."""
    config.update(seeds=[-1], colour="red")
    config["training"]["epochs"] = 0
    with pytest.raises(ConfigError) as raised:
        load_study(config, "config/config.yaml", overrides={"seeds": [-1]})
    lines = str(raised.value).splitlines()
    assert len(lines) == 3
    assert "the command line (--config): key 'seeds.0': -1 is less than the minimum of 0" in lines
    assert any(line.startswith("config/config.yaml: key 'training.epochs'") for line in lines)
    assert any(line.startswith("config/config.yaml: key 'colour'") for line in lines)
