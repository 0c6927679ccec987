"""The conda environments of the rules (`--software-deployment-method conda`), checked as far
as a machine without conda can: each file is a valid env with every dependency pinned to the
version this suite runs with; each rule's script, with its env's packages only, imports (the
light envs never pull in the model stack); and the code those scripts import needs no
third-party package its env lacks."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
GPU_ENV = REPO / "envs" / "gpu.yaml"  # the GPU set: pinned to what GPUs run, not to what CI runs
ENVS = sorted(e for e in (REPO / "envs").glob("*.yaml") if e != GPU_ENV)
# distribution -> the module it provides, where the names differ
MODULE_OF = {"pyyaml": "yaml", "python-dotenv": "dotenv", "easy-dataset-share": "easy_dataset_share"}
MODEL_STACK = {"torch", "transformers", "peft", "bitsandbytes", "tokenizers", "safetensors", "accelerate"}


def pins(env: Path) -> dict[str, str]:
    spec = yaml.safe_load(env.read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    out = {}
    for line in pip:
        name, _, version = line.partition("==")
        assert version, f"{env.name}: {line!r} is not pinned (NAME==VERSION)"
        out[name.lower()] = version
    return out


def scripts_of(env: Path) -> list[Path]:
    """The scripts of the rules whose `conda:` is this env (inherited rules share their parent's)."""
    out = []
    for rules in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=rule |use rule )", rules.read_text()):
            conda = re.search(r'conda:\s*\n\s*(?:"\.\./envs/(\w+)\.yaml"|(JUDGE_ENV)|(MODEL_ENV))', block)
            script = re.search(r'script:\s*\n\s*"\.\./(workflow/scripts/\w+\.py)"', block)
            # JUDGE_ENV: the light env for the toy and API judges (a local-model judge: see below)
            if conda and script and (conda[1] or ("train" if conda[3] else "judge")) == env.stem:
                out.append(REPO / script[1])
    return out


@pytest.mark.parametrize("env", ENVS, ids=[e.stem for e in ENVS])
def test_env_file_is_valid_and_pinned_to_the_tested_versions(env):
    spec = yaml.safe_load(env.read_text())
    assert spec["channels"] == ["conda-forge", "nodefaults"]
    assert "python=3.11" in spec["dependencies"] and "pip" in spec["dependencies"]
    assert not any("-e" in str(d) or ".." in str(d) for d in spec["dependencies"])  # no relative installs
    for name, version in pins(env).items():
        installed = importlib.metadata.version(name).split("+")[0]
        assert installed == version, f"{env.name}: {name}=={version}, but the suite runs {installed}"


@pytest.mark.parametrize("env", [e for e in ENVS if e.stem != "train"], ids=lambda e: e.stem)
def test_light_env_scripts_import_with_their_env_only(env):
    """Import every inoculate module a light env's scripts import, then list the third-party
    packages those modules import at their top level: all must be in the env, none in the model stack."""
    scripts = scripts_of(env)
    assert scripts, f"no rule uses {env.name}"
    modules = sorted(
        {
            m
            for s in scripts
            for m in re.findall(r"^from (inoculate[\w.]*) import", s.read_text(), re.MULTILINE)
        }
    )
    code = f"""
import importlib, json, sys
for m in {modules!r}:
    importlib.import_module(m)
print(json.dumps(sorted(sys.modules)))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    loaded = set(json.loads(proc.stdout))
    assert not loaded & MODEL_STACK, f"{env.name}'s scripts import {sorted(loaded & MODEL_STACK)}"
    needed = set()
    for name in (m for m in loaded if m == "inoculate" or m.startswith("inoculate.")):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        for node in ast.parse(Path(spec.origin).read_text()).body:  # module-level imports only
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else (
                    [node.module]
                    if isinstance(node, ast.ImportFrom) and node.module and not node.level
                    else []
                )
            )
            needed |= {n.split(".")[0] for n in names}
    third_party = needed - set(sys.stdlib_module_names) - {"inoculate", "__future__"}
    provided = {MODULE_OF.get(name, name.replace("-", "_")) for name in pins(env)}
    assert third_party <= provided, f"{env.name} lacks {sorted(third_party - provided)}"


RULE_ENVS = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings
out = {}
for name, extra in (("toy", {"judge": {"backend": "toy"}}), ("hf", {"judge": {"backend": "hf", "model": "some/judge"}}),
                    ("gpu", {"judge": {"backend": "hf", "model": "some/judge"}, "model_env": "gpu"})):
    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(config=extra),
            snakefile=Path("Snakefile"),
            workdir=Path("."),
        )._workflow
        out[name] = {r: workflow.get_rule(r).conda_env for r in ("judge", "judge_checkpoint", "judge_calibration", "generate", "train_adapter")}
print(json.dumps(out))
"""


def test_judge_rules_env_follows_the_judge_backend(repo):
    """Under `--sdm conda` a local-model judge (`judge.backend: hf`) runs in the train env, which
    has torch; the toy and API judges in the light judge env. Read from the rules as Snakemake
    loads them."""
    proc = subprocess.run(
        [sys.executable, "-c", RULE_ENVS], cwd=repo, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    envs = json.loads(proc.stdout.strip().splitlines()[-1])
    judges = ("judge", "judge_checkpoint", "judge_calibration")
    assert {envs["toy"][r] for r in judges} == {"../envs/judge.yaml"}
    assert set(envs["hf"].values()) == {"../envs/train.yaml"}
    assert set(envs["gpu"].values()) == {"../envs/gpu.yaml"}  # model_env: gpu, the GPU set


def _built_wheel(repo: Path, tmp_path: Path) -> Path:
    """The package's wheel, built from a copy of the sources (no build folder in the checkout)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(repo / name, source / name)
    shutil.copytree(repo / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            wheels,
            source,
        ],
        check=True,
        capture_output=True,
    )
    return next(wheels.glob("inoculate-*.whl"))


def test_installed_wheel_runs_stats_outside_the_checkout_without_the_model_stack(repo, tmp_path):
    """`pip install 'inoculate[stats]'` from the wheel: the schemas ship inside the package, and
    re-analysing judged files needs neither the model stack nor Snakemake, from any folder."""
    import pandas as pd

    wheel = _built_wheel(repo, tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        assert "inoculate/schemas/config.schema.yaml" in archive.namelist()
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", target, wheel],
        check=True,
        capture_output=True,
    )
    judged = tmp_path / "judged.csv"
    pd.DataFrame(
        {
            "response": ["a", "b", "c", "d"],
            "question": ["q"] * 4,
            "question_id": ["q1", "q1", "q2", "q2"],
            "aligned": [10, 90, 20, 95],
            "coherent": [80, 90, 70, 60],
        }
    ).to_csv(judged, index=False)
    blocked = sorted(MODEL_STACK | {"snakemake"})
    code = f"""
import sys
import zipfile
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is not installed in an inoculate[stats] environment")
sys.meta_path.insert(0, Block())
import inoculate
assert inoculate.__file__.startswith({str(target)!r}), inoculate.__file__
from inoculate.cli import main
sys.exit(main(["stats", "--judged", {str(judged)!r}, "--out", "out", "--resamples", "200"]))
"""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=outside, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "P(misaligned) 0.500" in proc.stdout and (outside / "out/summary.csv").exists()


GPU_SET = {
    "torch": "2.14.0",
    "transformers": "5.17.0",
    "peft": "0.21.2",
    "vllm": "0.33.0",
    "unsloth": "2026.10.9",
    "bitsandbytes": "0.50.2",
    "trl": "1.15.0",
}


def test_gpu_extra_pins_the_one_set_that_holds_vllm_and_unsloth():
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pinned = dict(req.split("==") for req in extras["gpu"] if "==" in req)
    assert pinned == GPU_SET and "inoculate[workflow]" in extras["gpu"]
    gpu_env = pins(GPU_ENV)
    assert {name: gpu_env[name] for name in GPU_SET} == GPU_SET
    train_env = pins(REPO / "envs" / "train.yaml")  # the rest as the model jobs' tested env
    assert {k: v for k, v in gpu_env.items() if k not in GPU_SET} == {
        k: v for k, v in train_env.items() if k not in GPU_SET and k not in ("tokenizers", "safetensors")
    }


@pytest.mark.skipif(
    os.environ.get("INOCULATE_RESOLVE_GPU") != "1",
    reason="resolving the GPU set asks the package registry for about 225 packages (2 minutes): "
    "INOCULATE_RESOLVE_GPU=1 runs it",
)
def test_gpu_extra_resolves(tmp_path):
    """pip resolves `.[gpu]` to one set holding vLLM, Unsloth, torch, transformers, peft and
    bitsandbytes at the pinned versions (nothing is installed)."""
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",  # every package of the set is listed, installed here or not
            "--quiet",
            "--report",
            str(report),
            f"{REPO}[gpu]",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 and (
        "No matching distribution" in proc.stderr or "connection" in proc.stderr.lower()
    ):
        pytest.skip(f"no package registry reachable: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    resolved = {
        i["metadata"]["name"].lower(): i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }
    for name, version in GPU_SET.items():
        assert resolved.get(name, "").split("+")[0] == version, (name, resolved.get(name))
