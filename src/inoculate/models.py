"""Loading base models and tokenizers from a local folder or a hub id, with errors that say what to set."""

from __future__ import annotations

import torch


class ModelLoadError(RuntimeError):
    """A base model that cannot be loaded; the message says which config key to change."""


def torch_dtype(name: str):
    """Config dtype names to what `from_pretrained(dtype=...)` takes."""
    return {"auto": "auto", "bfloat16": torch.bfloat16, "float32": torch.float32}[name]


def _explain(base: str, error: Exception) -> ModelLoadError:
    return ModelLoadError(
        f"cannot load base model {base!r} ({type(error).__name__}: {error}). Set base_models.<name>.base to a "
        "local folder with the model, or to a hub id this machine can download (gated models need "
        "`hf auth login` or HF_TOKEN; offline machines need the model in the HF cache or a local path)."
    )


def load_tokenizer(base: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(base)
    except (OSError, ValueError) as e:
        raise _explain(base, e) from e


def load_causal_lm(base: str, dtype: str = "auto"):
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype(dtype))
    except (OSError, ValueError) as e:
        raise _explain(base, e) from e
