"""`inoculate doctor` against a local OpenAI-compatible server and real encrypted archives."""

from __future__ import annotations

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
