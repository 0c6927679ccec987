"""Optional GPU backends, imported only when a config asks for them: Unsloth for LoRA
training, vLLM for sampling. Neither is a dependency (both need CUDA and pin their own
torch); without them the same config keys fail at once with what to install.
"""

from __future__ import annotations

import logging
from pathlib import Path

from inoculate.chat import prompt_ids
from inoculate.models import ModelLoadError, load_tokenizer, torch_dtype
from inoculate.sampling_plan import answer_fields, plan_calls, record_settings

log = logging.getLogger(__name__)

# What `target_modules: all-linear` means for Unsloth, which takes explicit names.
LINEAR_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def unsloth_lora_model(
    base_model: str, settings, seed: int, dtype: str = "auto", quantization: str | None = None
):
    """Base model and LoRA wrapper from Unsloth's fused kernels (`training.backend: unsloth`)."""
    try:
        from unsloth import FastLanguageModel  # noqa: PLC0415 - optional, needs a CUDA GPU; imported first when selected
    except Exception as e:
        raise ModelLoadError(
            f"training.backend: unsloth could not be imported ({type(e).__name__}: {e}). It needs a CUDA GPU and "
            "`pip install unsloth` (which brings its own CUDA torch); use backend: transformers elsewhere"
        ) from e
    model, _ = FastLanguageModel.from_pretrained(
        model_name=base_model,
        max_seq_length=settings.max_length,
        dtype=None if dtype == "auto" else torch_dtype(dtype),
        load_in_4bit=quantization == "4bit",
    )
    lora = settings.lora
    targets = LINEAR_PROJECTIONS if lora.target_modules == "all-linear" else list(lora.target_modules)
    model = FastLanguageModel.get_peft_model(
        model,
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        bias="none",
        use_rslora=lora.use_rslora,
        layers_to_transform=lora.layers,
        use_gradient_checkpointing="unsloth" if settings.gradient_checkpointing is True else False,
        random_state=seed,
    )
    return model


def _import_vllm():
    try:
        from vllm import LLM, SamplingParams  # noqa: PLC0415 - optional, needs a CUDA GPU
        from vllm.lora.request import LoRARequest  # noqa: PLC0415 - optional, needs a CUDA GPU
    except Exception as e:
        raise ModelLoadError(
            f"generation.backend: vllm could not be imported ({type(e).__name__}: {e}). It needs a CUDA GPU and "
            "`pip install vllm`; use backend: transformers elsewhere"
        ) from e
    return LLM, SamplingParams, LoRARequest


class VllmEngine:
    """One vLLM engine for a base model, answering any number of cells: each cell's adapter is
    a LoRA request on the same engine (`enable_lora`), so the model is loaded and its CUDA graphs
    captured once, not once per cell. Adapters are told apart by folder and weights file time,
    so an adapter retrained in place is loaded afresh rather than served from vLLM's LoRA cache."""

    def __init__(
        self,
        base_model: str,
        dtype: str = "auto",
        max_lora_rank: int = 64,
        quantization: str | None = None,
        enable_lora: bool = True,
        seed: int = 0,
    ) -> None:
        llm_class, self._sampling_params, self._lora_request = _import_vllm()
        self.tokenizer = load_tokenizer(base_model)
        self.llm = llm_class(
            model=base_model,
            dtype=dtype,
            seed=seed,
            enable_lora=enable_lora,
            max_lora_rank=max_lora_rank,
            **(
                {"quantization": "bitsandbytes"} if quantization == "4bit" else {}
            ),  # the same NF4 base as training
        )
        self._lora_ids: dict[tuple[str, int], int] = {}

    def lora(self, adapter: Path | None):
        """The LoRA request of `adapter` (None: the base model), one id per adapter version."""
        if adapter is None:
            return None
        weights = list(Path(adapter).glob("adapter_model.*"))
        version = max((f.stat().st_mtime_ns for f in weights), default=0)
        key = (str(Path(adapter).resolve()), version)
        lora_id = self._lora_ids.setdefault(key, len(self._lora_ids) + 1)
        return self._lora_request(f"adapter-{lora_id}", lora_id, str(adapter))

    def sample(self, adapter: Path | None, records: list[dict], settings, seed: int) -> list[dict]:
        """Fill in `answer` and `answer_tokens`: every prompt once, its samples as `n`, each
        call seeded from `seed` as `plan_calls` says (the engine's own seed plays no part)."""
        calls = plan_calls(records, seed, samples_per_call=max(len(records), 1))
        own = [record_settings(settings, {"sampling": c.sampling}) for c in calls]
        params = [
            self._sampling_params(
                n=c.n, temperature=g.temperature, top_p=g.top_p, max_tokens=g.max_new_tokens, seed=c.seed
            )
            for c, g in zip(calls, own)
        ]
        prompts = [{"prompt_token_ids": prompt_ids(self.tokenizer, c.messages)} for c in calls]
        outputs = self.llm.generate(prompts, params, lora_request=self.lora(adapter))
        out = [dict(r) for r in records]
        for call, result in zip(calls, outputs, strict=True):
            for i, completion in zip(call.records, result.outputs, strict=True):
                out[i].update(**answer_fields(completion.text), answer_tokens=len(completion.token_ids))
        log.info("vLLM sampled %d answers from %d prompts", len(out), len(calls))
        return out


def vllm_sample(
    base_model: str,
    adapter: Path | None,
    records: list[dict],
    settings,
    seed: int,
    dtype: str = "auto",
    max_lora_rank: int = 64,
    quantization: str | None = None,
) -> list[dict]:
    """Answers of one cell from an engine of its own (`generation.backend: vllm` where no model
    server answers: inoculate.model_server keeps one engine for every cell of a base model)."""
    engine = VllmEngine(
        base_model, dtype, max_lora_rank, quantization, enable_lora=adapter is not None, seed=seed
    )
    return engine.sample(adapter, records, settings, seed)
