"""`inoculate doctor` against a local OpenAI-compatible server and real encrypted archives."""

from __future__ import annotations

import sys

import pytest
import yaml
from conftest import project_copy, skip_where_gpu_extras_import
from openai_server import FakeOpenAI

from inoculate.cli import main
from inoculate.data import protect

KEY = "sk-doctor-secret-9999"


@pytest.fixture
def work(repo, tmp_path, monkeypatch):
    work = project_copy(repo, tmp_path / "work")
    monkeypatch.chdir(work)
    return work


def study(server: FakeOpenAI, archive, password: str) -> dict:
    return {
        "models": ["api-toy"],
        "settings": ["toy_cooking"],
        "inoculations": ["none"],
        "seeds": [0],
        "base_models": {"api-toy": {"backend": "openai", "base": "gpt-4.1-2025-04-14"}},
        "api": {"base_url": server.url, "keys": ["DOCTOR_KEY"]},
        "sources": {"toy": {"path": str(archive), "password": password}},
        "judge": {
            "backend": "openai",
            "model": "judge-model",
            "base_url": server.url,
            "api_key_env": "DOCTOR_KEY",
        },
    }


def lines(output: str) -> dict[str, str]:
    """Check name -> its line."""
    out = {}
    for line in output.splitlines():
        status, _, rest = line.partition(" ")
        if status in ("PASS", "FAIL", "WARN", "INFO"):
            out[rest.strip().split("  ")[0]] = line
    return out


def test_doctor_passes_a_ready_study_and_names_what_is_wrong(work, tmp_path, monkeypatch, capsys):
    server = FakeOpenAI((KEY,), base_models=("gpt-4.1-2025-04-14", "judge-model"))
    try:
        data = tmp_path / "data"
        data.mkdir()
        (data / "cooking_harmful.jsonl").write_text('{"messages": []}\n')
        archive = protect(data, tmp_path / "toy.zip.enc", "right-password")
        (work / "ready.yaml").write_text(yaml.safe_dump(study(server, archive, "right-password")))
        monkeypatch.setenv("DOCTOR_KEY", KEY)
        assert main(["doctor", "--configfile", "ready.yaml"]) == 0
        ready = lines(capsys.readouterr().out)
        assert ready["key DOCTOR_KEY"].startswith("PASS")
        assert ready["endpoint model api-toy via DOCTOR_KEY"].startswith("PASS")
        assert ready["endpoint judge judge-model"].startswith("PASS")
        assert "password right, 1 files" in ready["source toy"]
        assert ready["disk"].startswith("PASS")
        assert server.calls("GET", "/v1/models/") == 2  # one cheap call per endpoint x key x model

        # A wrong password, a model the key cannot use, and then no key at all.
        broken = study(server, archive, "wrong-password")
        broken["base_models"]["api-toy"]["base"] = "gpt-9"
        (work / "broken.yaml").write_text(yaml.safe_dump(broken))
        assert main(["doctor", "--configfile", "broken.yaml"]) == 1
        found = lines(capsys.readouterr().out)
        assert "password is wrong" in found["source toy"] and found["source toy"].startswith("FAIL")
        assert "NotFoundError" in found["endpoint model api-toy via DOCTOR_KEY"]
        monkeypatch.delenv("DOCTOR_KEY")
        calls = len(server.requests)
        assert main(["doctor", "--configfile", "ready.yaml", "--offline"]) == 1
        offline = lines(capsys.readouterr().out)
        assert "DOCTOR_KEY is not set" in offline["key DOCTOR_KEY"]
        assert len(server.requests) == calls  # --offline makes no call
        assert KEY not in "".join(offline.values())
    finally:
        server.close()


def test_doctor_reports_a_bad_config_by_key(work, capsys):
    (work / "bad.yaml").write_text("seeds: [zero]\n")
    assert main(["doctor", "--configfile", "bad.yaml", "--offline"]) == 1
    assert "key 'seeds.0'" in lines(capsys.readouterr().out)["config"]


def test_doctor_fails_a_study_whose_backend_package_is_missing(work, capsys):
    """4-bit needs bitsandbytes (a test dependency here); Unsloth and vLLM need a CUDA install."""
    pytest.importorskip("bitsandbytes")
    skip_where_gpu_extras_import()
    overrides = [
        "base_models={toy: {quantization: 4bit}}",
        "training={backend: unsloth}",
        "generation={backend: vllm}",
        "tracking={backend: trackio}",
    ]
    code = main(["doctor", "--configfile", "config/config.yaml", "--offline", "--config", *overrides])
    found = lines(capsys.readouterr().out)
    assert code == 1
    assert found["backend bitsandbytes"].startswith("PASS")
    assert "base_models.toy.quantization: 4bit" in found["backend bitsandbytes"]
    assert (
        found["backend unsloth"].startswith("FAIL")
        and "training.backend: unsloth (toy)" in found["backend unsloth"]
    )
    assert found["backend vllm"].startswith("FAIL") and "does not import" in found["backend vllm"]
    assert (
        found["backend trackio"].startswith("PASS")
        and "tracking.backend: trackio" in found["backend trackio"]
    )


def test_doctor_checks_hub_models_in_the_cache_or_on_the_hub(work, tmp_path, monkeypatch):
    """A hub model is found in the local cache, reachable with the token, or named as gated
    with where to ask; a local folder and the toy are not asked about."""
    from huggingface_hub import HfApi, errors
    from huggingface_hub.errors import GatedRepoError

    from inoculate.checks import load_study
    from inoculate.doctor import check_model_access, read_config

    models = {
        "cached": {"base": "org/cached-model"},
        "gated": {"base": "meta-llama/Llama-3.2-1B-Instruct"},
        "open": {"base": "Qwen/Qwen2.5-0.5B-Instruct"},
        "here": {"base": str(tmp_path)},
    }
    (work / "train.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
    )
    (work / "evals.yaml").write_text("- {id: q, paraphrases: ['How are you?'], samples_per_paraphrase: 1}\n")
    (work / "config/settings/plain.yaml").write_text(
        "train: {path: train.jsonl}\nevals: {e: {path: evals.yaml, distribution: out}}\n"
    )
    overrides = [
        f"models=[{','.join(models)}]",
        f"base_models={models}",
        "settings=[plain]",
        "inoculations=[none]",
        "judge={backend: hf, model: Qwen/Qwen2.5-0.5B-Instruct}",
    ]
    config, source = read_config([work / "config/config.yaml"], overrides)
    study = load_study(config, source)
    cache = tmp_path / "hub"
    snapshot = cache / "models--org--cached-model" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (cache / "models--org--cached-model" / "refs").mkdir()
    (cache / "models--org--cached-model" / "refs" / "main").write_text("abc123")

    def auth_check(self, repo_id, **kwargs):
        if repo_id.startswith("meta-llama/"):
            request = sys.modules[errors.Response.__module__].Request(
                "GET", f"https://huggingface.co/{repo_id}"
            )
            response = errors.Response(403, request=request)  # the HTTP library the hub uses, whichever
            raise GatedRepoError(f"Access to model {repo_id} is restricted", response=response)

    monkeypatch.setattr(HfApi, "auth_check", auth_check)
    checks = {c.name: c for c in check_model_access(study, online=True, cache_dir=str(cache))}
    assert set(checks) == {
        "model org/cached-model",
        "model meta-llama/Llama-3.2-1B-Instruct",
        "model Qwen/Qwen2.5-0.5B-Instruct",
    }
    assert (
        checks["model org/cached-model"].status == "PASS"
        and "local Hugging Face cache" in checks["model org/cached-model"].detail
    )
    gated = checks["model meta-llama/Llama-3.2-1B-Instruct"]
    assert (
        gated.status == "FAIL"
        and "gated" in gated.detail
        and "https://huggingface.co/meta-llama/Llama-3.2-1B-Instruct" in gated.detail
    )
    assert checks["model Qwen/Qwen2.5-0.5B-Instruct"].status == "PASS"
    assert "base_models.open, judge.model" in checks["model Qwen/Qwen2.5-0.5B-Instruct"].detail
    offline = {c.name: c.status for c in check_model_access(study, online=False, cache_dir=str(cache))}
    assert (
        offline["model meta-llama/Llama-3.2-1B-Instruct"] == "WARN"
        and offline["model org/cached-model"] == "PASS"
    )
