"""Loading base models and tokenizers from a local folder or a hub id, with errors that say what to set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch

T = TypeVar("T")


class ModelLoadError(RuntimeError):
    """A base model that cannot be loaded; the message says which config key to change."""


class OutOfMemory(RuntimeError):
    """Training or sampling did not fit in GPU memory as far as the settings allow; the
    message says which config keys to lower."""


def within_memory(device: torch.device, run: Callable[..., T], *args: Any) -> tuple[T | None, str | None]:
    """`(run(*args), None)`, or `(None, the error's first line)` when it ran out of GPU memory.

    The failed attempt's tensors are released on leaving the handler; the allocator's cache
    is emptied after that, so that a retry (smaller, or with less kept) starts clean."""
    error = None
    try:
        return run(*args), None
    except torch.OutOfMemoryError as e:
        error = str(e).splitlines()[0] if str(e) else "out of memory"
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return None, error


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model inside a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


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
    from transformers import AutoTokenizer  # noqa: PLC0415 - optional heavy library (the [models] extra)

    try:
        return AutoTokenizer.from_pretrained(base)
    except (OSError, ValueError) as e:
        raise _explain(base, e) from e


QUANTIZATIONS = (None, "4bit")


def quantization_config(quantization: str | None, dtype: str = "auto"):
    """bitsandbytes NF4 with double quantization (QLoRA's recipe); compute in bf16 when asked."""
    if quantization is None:
        return None
    if quantization not in QUANTIZATIONS:
        raise ModelLoadError(
            f"base_models.<name>.quantization: {quantization!r} is not one of {QUANTIZATIONS}"
        )
    try:
        import bitsandbytes  # noqa: F401, PLC0415 - optional (the [quant] extra)
    except ImportError as e:
        raise ModelLoadError(
            "base_models.<name>.quantization: 4bit needs bitsandbytes: pip install -e '.[quant]'"
        ) from e
    from transformers import BitsAndBytesConfig  # noqa: PLC0415 - optional heavy library (the [models] extra)

    compute = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )


def load_causal_lm(base: str, dtype: str = "auto", quantization: str | None = None, device: str = "cpu"):
    """The base model on `device`; with `quantization: 4bit`, its linear layers in NF4
    (placed on the device while loading: quantized weights are not moved afterwards)."""
    from transformers import AutoModelForCausalLM  # noqa: PLC0415 - optional heavy library (the [models] extra)

    quant = quantization_config(quantization, dtype)
    try:
        if quant is None:
            return AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype(dtype)).to(device)
        return AutoModelForCausalLM.from_pretrained(
            base,
            quantization_config=quant,
            dtype=torch.bfloat16 if dtype == "bfloat16" else torch.float32,
            device_map={"": device},
        )
    except (OSError, ValueError) as e:
        raise _explain(base, e) from e
