"""`inoculate doctor`: what a study needs, checked before it spends anything.

One line per check, PASS / WARN / FAIL / INFO, and a non-zero exit on any
FAIL: packages and versions, the GPU, the config, API keys (present, never
shown), each endpoint answering one cheap call, data sources readable with the
right password, and disk space for the adapters the study will write.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.requirements import Requirement

from inoculate.api.batch import BatchSettings
from inoculate.api.settings import ApiSettings, client_options
from inoculate.calibration import PUBLISHED_JUDGE, calibrated_judges, judge_name
from inoculate.cell_paths import study_folder
from inoculate.checks import load_study
from inoculate.data import decrypt, sha256_of
from inoculate.io import read_yaml
from inoculate.judge_workload import judge_workload
from inoculate.layering import check_layers, study_name
from inoculate.schema import ConfigError
from inoculate.secrets import MissingSecret, get_secret
from inoculate.study import Study

OPTIONAL = {
    "bitsandbytes": "4-bit base models (extra `quant`)",
    "snakemake-executor-plugin-slurm": "the SLURM profile (extra `slurm`)",
    "unsloth": "training.backend: unsloth (CUDA)",
    "vllm": "generation.backend: vllm (CUDA)",
    "inspect-ai": "snakemake inspect_logs, inoculate export --inspect (extra `inspect`)",
    "trackio": "tracking.backend: trackio (extra `tracking`)",
    "wandb": "tracking.backend: wandb",
}
FALLBACK_ADAPTER_MB = 200.0  # when a model's config cannot be read offline
ANSWER_BYTES = 2_000  # one generated record, with its prompt, in JSONL


@dataclass
class Check:
    status: str  # PASS, WARN, FAIL or INFO
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<5} {self.name:<34}  {self.detail}"


# -- config --------------------------------------------------------------------------------
def merge(base: dict, update: dict) -> dict:
    """Nested dict update, as Snakemake merges --configfile and --config."""
    out = dict(base)
    for key, value in update.items():
        out[key] = (
            merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def read_config(configfiles: list[Path], overrides: list[str]) -> tuple[dict, str]:
    """The config as `snakemake --configfile ... --config KEY=VALUE ...` would see it (the first
    file is the default config; study files after it are not merged unless one is an overlay)."""

    if configfiles:
        check_layers(configfiles, configfiles[0])
    config: dict = {}
    for path in configfiles:
        config = merge(config, read_yaml(path, bound_aliases=True) or {})
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--config {item}: expected KEY=VALUE")
        config = merge(config, {key: yaml.safe_load(value)})
    if configfiles:
        config["study"] = study_name(config, configfiles, configfiles[0])
    return config, " + ".join(map(str, configfiles))


# -- checks --------------------------------------------------------------------------------
def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    return Check("PASS" if sys.version_info >= (3, 11) else "FAIL", "python", version)


def check_packages() -> Iterator[Check]:
    """Every requirement of the installed `inoculate`, against what is installed."""

    for spec in importlib.metadata.requires("inoculate") or []:
        req = Requirement(spec)
        if req.marker is not None:  # extras: reported below as optional
            continue
        try:
            version = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            yield Check(
                "FAIL", f"package {req.name}", f"not installed (needs {req.specifier or 'any version'})"
            )
            continue
        ok = req.specifier.contains(version, prereleases=True)
        yield Check(
            "PASS" if ok else "FAIL",
            f"package {req.name}",
            version if ok else f"{version}, needs {req.specifier}",
        )
    for name, use in OPTIONAL.items():
        try:
            yield Check("INFO", f"package {name}", f"{importlib.metadata.version(name)} ({use})")
        except importlib.metadata.PackageNotFoundError:
            yield Check("INFO", f"package {name}", f"not installed; needed only for {use}")


def check_gpu(study: Study | None) -> Check:
    import torch  # noqa: PLC0415 - optional heavy library (the [models] extra)

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return Check(
            "PASS", "gpu", f"{torch.cuda.device_count()} x {props.name}, {props.total_memory / 2**30:.0f} GiB"
        )
    real = [m for m in (study.grid.models if study else []) if _is_downloaded_local(study, m)]
    if real:
        return Check(
            "WARN", "gpu", f"none visible: {', '.join(real)} would train and sample on CPU (very slow)"
        )
    return Check("INFO", "gpu", "none visible (the study needs none)")


def backend_needs(study: Study) -> dict[str, list[str]]:
    """Optional package -> the config keys of this study's local models that need it."""
    needs: dict[str, list[str]] = {}
    generation = study.config.get("generation") or {}
    for model in study.grid.models:
        spec = study.base_models.spec(model)
        if spec["backend"] != "local":
            continue
        if spec["quantization"] == "4bit":
            needs.setdefault("bitsandbytes", []).append(f"base_models.{model}.quantization: 4bit")
        if study.base_models.training(model).get("backend") == "unsloth":
            needs.setdefault("unsloth", []).append(f"training.backend: unsloth ({model})")
        if generation.get("backend") == "vllm":
            needs.setdefault("vllm", []).append(f"generation.backend: vllm ({model})")
    tracker = (study.config.get("tracking") or {}).get("backend")
    if tracker:
        needs.setdefault(tracker, []).append(f"tracking.backend: {tracker}")
    return needs


def check_backends(study: Study) -> Iterator[Check]:
    """Each optional package the study's config asks for is installed and imports."""
    for package, keys in backend_needs(study).items():
        try:
            importlib.import_module(package)
        except Exception as e:  # noqa: BLE001 - unsloth and vllm refuse to import without a GPU
            yield Check(
                "FAIL",
                f"backend {package}",
                f"{'; '.join(keys)}, but it does not import "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
            )
        else:
            yield Check("PASS", f"backend {package}", "; ".join(keys))


def hub_models(study: Study) -> dict[str, list[str]]:
    """Hugging Face model ids the study loads -> what loads them (base models, a persona
    generator, a local judge); local folders and the toy are not on the hub."""
    wanted: dict[str, list[str]] = {}
    names = list(study.grid.models)
    for setting in study.grid.backdoor_settings:
        generator = study.backdoor(setting).get("build_persona", {}).get("generator")
        if generator:
            names.append(generator)
    for name in dict.fromkeys(names):
        spec = study.base_models.spec(name)
        if spec["backend"] == "local":
            wanted.setdefault(spec["base"], []).append(f"base_models.{name}")
    judge = study.config["judge"]
    if judge["backend"] == "hf":
        wanted.setdefault(judge["model"], []).append("judge.model")
    return {
        repo: users
        for repo, users in wanted.items()
        if not repo.startswith("results/") and not Path(repo).exists()
    }


def check_model_access(study: Study, online: bool = True, cache_dir: str | None = None) -> Iterator[Check]:
    """Each hub model the study loads is in the local cache, or reachable with this machine's
    token (HF_TOKEN or `hf auth login`); a gated one without access is named with where to ask."""
    from huggingface_hub import HfApi, try_to_load_from_cache  # noqa: PLC0415 - only for hub models
    from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError  # noqa: PLC0415

    for repo, users in hub_models(study).items():
        name = f"model {repo}"
        used = ", ".join(users)
        try:
            cached = try_to_load_from_cache(repo, "config.json", cache_dir=cache_dir)
        except HFValidationError as e:
            yield Check("FAIL", name, f"{used}: not a local folder nor a hub id ({e})")
            continue
        if isinstance(cached, str):
            yield Check("PASS", name, f"{used}: in the local Hugging Face cache")
            continue
        if not online:
            yield Check("WARN", name, f"{used}: not in the local cache; access not checked (--offline)")
            continue
        try:
            HfApi().auth_check(repo)
        except GatedRepoError:
            yield Check(
                "FAIL",
                name,
                f"{used}: gated, and this machine's token has no access: ask at https://huggingface.co/{repo}, "
                "then set HF_TOKEN (or `hf auth login`)",
            )
        except RepositoryNotFoundError:
            yield Check("FAIL", name, f"{used}: not on the hub (or private: check the id and HF_TOKEN)")
        except Exception as e:  # noqa: BLE001 - no network, a proxy, a hub outage: said, not fatal
            yield Check(
                "WARN", name, f"{used}: the hub could not be asked ({type(e).__name__}: {str(e)[:120]})"
            )
        else:
            yield Check("PASS", name, f"{used}: accessible from the hub")


def _is_downloaded_local(study: Study, model: str) -> bool:
    """A local model that is not built by the workflow itself (those are CPU-sized)."""
    spec = study.base_models.spec(model)
    return spec["backend"] == "local" and not spec["base"].startswith("results/")


def required_keys(study: Study) -> dict[str, list[str]]:
    """Variable name -> what needs it."""

    needs: dict[str, list[str]] = {}
    api_models = [m for m in study.grid.models if study.base_models.spec(m)["backend"] == "openai"]
    if api_models:
        for key in ApiSettings.from_config(study.base_models.api_settings()).keys:
            needs.setdefault(key.env, []).append(f"models {', '.join(api_models)}")
    judge = study.config["judge"]
    if judge["backend"] == "openai":
        needs.setdefault(judge["api_key_env"], []).append("the judge")
    return needs


def check_keys(study: Study) -> Iterator[Check]:
    for env, users in required_keys(study).items():
        try:
            get_secret(env)
            yield Check("PASS", f"key {env}", f"set (for {'; '.join(users)})")
        except MissingSecret as e:
            yield Check("FAIL", f"key {env}", str(e))


def endpoint_calls(study: Study) -> list[tuple[str, dict, str]]:
    """(what, client options, model id) of each endpoint x key x model the study calls."""

    calls = []
    api = ApiSettings.from_config(study.base_models.api_settings())
    for model in study.grid.models:
        spec = study.base_models.spec(model)
        if spec["backend"] != "openai":
            continue
        for key in api.keys:
            calls.append((f"model {model} via {key.env}", lambda k=key: client_options(api, k), spec["base"]))
    judge = study.config["judge"]
    if judge["backend"] == "openai":
        env = judge["api_key_env"]
        calls.append(
            (
                f"judge {judge['model']}",
                lambda: {"api_key": get_secret(env), "base_url": judge["base_url"]},
                judge["model"],
            )
        )
    return calls


def check_endpoints(study: Study, timeout: float = 15.0) -> Iterator[Check]:
    """One free call per endpoint x key x model: retrieving the model proves key and access."""
    from openai import OpenAI  # noqa: PLC0415 - openai takes ~1 s to import; only calls need it

    for what, options, model in endpoint_calls(study):
        try:
            opts = {**options(), "max_retries": 1, "timeout": timeout}
        except MissingSecret:
            yield Check("FAIL", f"endpoint {what}", "not tried: its key is missing")
            continue
        url = opts.get("base_url") or "https://api.openai.com/v1"
        try:
            OpenAI(**opts).models.retrieve(model)
            yield Check("PASS", f"endpoint {what}", f"{url} answers; {model} is available")
        except Exception as e:  # noqa: BLE001 - every failure is a line of the report
            yield Check("FAIL", f"endpoint {what}", f"{url}: {type(e).__name__}: {str(e)[:200]}")


def used_sources(study: Study) -> dict[str, list[str]]:
    """Source name -> the settings that read from it."""
    used: dict[str, list[str]] = {}
    for setting in study.settings.values():
        for _, ref in setting.data_refs():
            if ref.source is not None and setting.name not in used.get(ref.source, []):
                used.setdefault(ref.source, []).append(setting.name)
    return used


def check_data(study: Study) -> Iterator[Check]:
    for name, settings in used_sources(study).items():
        spec = study.config["sources"][name]
        path = Path(study.data.source_path(name))
        label = f"source {name}"
        if not path.exists():
            if "url" in spec:
                yield Check("INFO", label, f"downloaded by the workflow from {spec['url']}")
            elif str(path).startswith("results/"):
                yield Check("INFO", label, f"{path} is built by the workflow")
            else:
                yield Check(
                    "FAIL",
                    label,
                    f"{path} not found (used by {', '.join(settings)}); check external_data_dir",
                )
            continue
        if not study.data.is_archive(name):
            yield Check("PASS", label, f"{path} readable")
            continue
        if spec.get("sha256") and sha256_of(path) != spec["sha256"]:
            yield Check("FAIL", label, f"{path}: sha256 differs from sources.{name}.sha256")
            continue
        if Path(study.data.source_dir(name)).exists():
            yield Check("PASS", label, f"{path} already decrypted to {study.data.source_dir(name)}")
            continue
        try:
            with tempfile.TemporaryDirectory() as tmp:
                files = decrypt(path, Path(tmp) / "out", study.data.source_password(name))
            yield Check("PASS", label, f"{path}: password right, {len(files)} files")
        except (ValueError, ConfigError) as e:
            yield Check("FAIL", label, str(e))
    for setting in study.settings.values():
        for key, ref in setting.data_refs():
            if ref.source is not None:
                continue
            path = Path(study.data.resolve(ref))
            if study.data.missing(ref):
                level = "FAIL" if key == "train" else "WARN"
                yield Check(
                    level,
                    f"data {setting.name}.{key}",
                    f"{path} not found: not obtainable here; the "
                    f"authors published it at {ref.published}"
                    + ("" if key == "train" else " (the arms that need it are left out)"),
                )
            elif not path.exists() and not str(path).startswith("results/"):
                yield Check("FAIL", f"data {setting.name}.{key}", f"{path} not found")


def adapter_megabytes(study: Study, model: str) -> tuple[float, bool]:
    """(size of one LoRA adapter in MB, whether it was computed from the model's config)."""
    from transformers import AutoConfig  # noqa: PLC0415 - optional heavy library (the [models] extra)

    r = study.base_models.training(model)["lora"]["r"]
    try:
        cfg = AutoConfig.from_pretrained(study.base_models.spec(model)["base"], local_files_only=True)
        cfg = getattr(cfg, "text_config", None) or cfg
        h, inter, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
        heads = cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or h // heads
        kv = getattr(cfg, "num_key_value_heads", None) or heads
        q, k = heads * head_dim, kv * head_dim
        # every linear layer of a block: q, k, v, o, gate, up, down (an upper bound for fewer targets)
        per_layer = (h + q) + 2 * (h + k) + (q + h) + 3 * (h + inter)
        return 4 * r * per_layer * layers / 1e6, True
    except Exception:  # noqa: BLE001 - not on disk yet, or not a causal LM config
        return FALLBACK_ADAPTER_MB, False


def check_disk(study: Study, results: Path = Path("results")) -> Check:
    need_mb, assumed = 0.0, []
    for model, *_ in study.grid.cells(trained_only=True):
        if study.base_models.spec(model)["backend"] != "local":
            continue
        mb, computed = adapter_megabytes(study, model)
        need_mb += mb
        if not computed and model not in assumed:
            assumed.append(model)
    samples = len(study.grid.cells()) * 1000  # a rough upper bound of answers per cell
    need_mb += samples * ANSWER_BYTES * 3 / 1e6  # generations, judgments, tables
    where = results if results.exists() else Path.cwd()
    free_mb = shutil.disk_usage(where).free / 1e6
    detail = f"{free_mb / 1e3:.1f} GB free at {where}; the study needs about {need_mb / 1e3:.2f} GB"
    if assumed:
        detail += f" ({FALLBACK_ADAPTER_MB:.0f} MB per adapter assumed for {', '.join(assumed)})"
    return Check("PASS" if free_mb > 1.5 * need_mb else "FAIL", "disk", detail)


def check_calibration(study: Study) -> Check | None:
    """Whether a judge other than the published one has been calibrated against it (the
    study's own calibration table)."""

    if not study.judging.needs_calibration():
        return None
    name = judge_name(study.config["judge"])
    table = Path(study_folder(study.config.get("study"))) / "tables" / "judge_calibration.csv"
    if name in calibrated_judges(table):
        return Check("PASS", "judge calibration", f"{name} calibrated against {PUBLISHED_JUDGE} ({table})")
    where = (
        "the study runs it"
        if study.judging.calibration_files()
        else "no judged files here: set calibration.files or external_data_dir"
    )
    return Check(
        "WARN",
        "judge calibration",
        f"{name} has never been calibrated against {PUBLISHED_JUDGE}: its rates "
        f"are not comparable with published ones until `snakemake "
        f"judge_calibration` ({where})",
    )


def check_judge_cost(study: Study) -> Check | None:
    """What judging the whole study costs, synchronously and in batch mode (paying judges only)."""
    if study.config["judge"]["backend"] != "openai":
        return None

    try:
        work = judge_workload(study)
    except (OSError, ValueError, KeyError) as e:  # eval files not here: the data checks say which
        return Check("INFO", "judge cost", f"not estimated ({type(e).__name__}: {str(e)[:120]})")

    discount = BatchSettings.from_config(study.config["judge"].get("batch")).discount
    mode = study.config["judge"]["mode"]
    detail = (
        f"{work.answers:,} answers, {work.calls:,} calls, about {work.tokens_in / 1e6:.1f}M tokens in: "
        f"about ${work.usd:,.2f} synchronously, ${work.batch_usd(discount):,.2f} in batch mode "
        f"(judge.mode: {mode}; cached calls are free)"
    )
    if not work.usd:
        detail = f"{work.answers:,} answers, {work.calls:,} calls (set judge.price to see what they cost)"
    return Check("INFO", "judge cost", detail)


def run_checks(config: dict, source: str, online: bool = True) -> list[Check]:
    checks = [check_python(), *check_packages()]
    try:
        study = load_study(config, source)
        checks.append(
            Check(
                "PASS",
                "config",
                f"{source}: {len(study.grid.cells())} cells, {len(study.grid.cells(trained_only=True))} to train",
            )
        )
    except (ConfigError, ValueError) as e:
        checks.append(Check("FAIL", "config", str(e)))
        study = None
    checks.append(check_gpu(study))
    if study is None:
        return checks
    checks += check_backends(study)
    checks += check_keys(study)
    checks += check_model_access(study, online)
    if online:
        checks += check_endpoints(study)
    checks += check_data(study)
    for check in (check_calibration(study), check_judge_cost(study)):
        if check is not None:
            checks.append(check)
    checks.append(check_disk(study))
    return checks


def report(checks: list[Check]) -> tuple[str, int]:
    failed = sum(c.status == "FAIL" for c in checks)
    warned = sum(c.status == "WARN" for c in checks)
    lines = [c.line() for c in checks]
    lines.append(f"{'FAIL' if failed else 'OK'}: {failed} failed, {warned} warnings, {len(checks)} checks")
    return "\n".join(lines), 1 if failed else 0


def main(configfiles: list[Path], overrides: list[str], online: bool = True) -> int:
    config, source = read_config(configfiles, overrides)
    text, code = report(run_checks(config, source, online))
    print(text)
    return code
