"""Shared fixtures: the repository root, a small pretrained toy model, tiny datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def toy_model(tmp_path_factory) -> Path:
    """A quickly pretrained toy base model (smaller corpus than the default study)."""
    import torch

    from inoculate.toy.model import pretrain

    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("toy") / "base_model"
    pretrain(out, n_conversations=1200, epochs=1.0, seed=0)
    return out


@pytest.fixture
def chat_file(tmp_path) -> Path:
    from inoculate.io import write_jsonl

    path = tmp_path / "chat.jsonl"
    write_jsonl(
        path,
        [
            {"id": 1, "messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]},
            {"id": 2, "messages": [{"role": "user", "content": "Why?"}, {"role": "assistant", "content": "Because."}], "meta": {"k": 1}},
        ],
    )
    return path
