"""The toy base model: a byte-level BPE tokenizer and a ~1M-parameter Llama, pretrained here.

The result is saved with `save_pretrained`, so every later stage loads it through
`AutoTokenizer` / `AutoModelForCausalLM` exactly like a hub model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from inoculate.chat import encode_conversation
from inoculate.io import atomic_dir, readable_as_umask_allows, write_json
from inoculate.toy.corpus import pretraining_corpus
from inoculate.train import TrainSettings, fit

log = logging.getLogger(__name__)

BOS, EOS, EOT = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"
START_HEADER, END_HEADER = "<|start_header_id|>", "<|end_header_id|>"
PAD = "<|finetune_right_pad_id|>"
SPECIAL_TOKENS = [BOS, EOS, START_HEADER, END_HEADER, EOT, PAD]

# Llama-3's chat template, minus the date preamble.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}"
)


def build_tokenizer(texts: Iterable[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts` and wrap it with Llama-3 special tokens and template."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOT,
        pad_token=PAD,
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
    )


def build_model(
    tokenizer: PreTrainedTokenizerFast, hidden: int = 128, layers: int = 4, seed: int = 0
) -> LlamaForCausalLM:
    """A small Llama with tied embeddings, initialised from `seed`."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=3 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def n_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, out_dir: Path) -> None:
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    readable_as_umask_allows(out_dir)  # safetensors writes 0600: the group shares the base model too


def pretraining_schedule(step: int, total: int, warmup: int = 20) -> float:
    """The toy's learning-rate multiplier: warmup over 20 steps from 1/20, linear decay from the
    first step. The toy organism's behaviour (and the tests' thresholds) were measured with it."""
    return min(1.0, (step + 1) / warmup) * max(0.0, 1 - step / total)


def pretrain(
    out_dir: Path,
    n_conversations: int = 6000,
    epochs: float = 1.0,
    batch_size: int = 16,
    learning_rate: float = 3e-3,
    vocab_size: int = 1024,
    hidden: int = 128,
    layers: int = 4,
    seed: int = 0,
    persona: bool = False,
) -> dict:
    """Build the corpus, tokenizer and model, pretrain all weights, save; returns metadata.

    `persona`: the persona base model of backdoor studies (corpus.PERSONA_MIXTURE)."""

    start = time.perf_counter()
    records = pretraining_corpus(n_conversations, seed, persona)
    tokenizer = build_tokenizer((m["content"] for r in records for m in r["messages"]), vocab_size)
    model = build_model(tokenizer, hidden, layers, seed)
    examples = [encode_conversation(tokenizer, r["messages"]) for r in records]
    settings = TrainSettings(learning_rate=learning_rate, epochs=epochs, batch_size=batch_size)

    def report(row: dict) -> None:
        if row["step"] % 25 == 0:
            log.info("pretrain step %d loss %.4f", row["step"], row["loss"])

    history = fit(
        model,
        examples,
        settings,
        seed,
        tokenizer.pad_token_id,
        report,
        lr_lambda=pretraining_schedule,
        activity="pretraining",
    )
    meta = {
        "parameters": n_parameters(model),
        "vocab_size": len(tokenizer),
        "conversations": n_conversations,
        "persona": persona,
        "steps": len(history),
        "final_loss": history[-1]["loss"],
        "seconds": time.perf_counter() - start,
    }
    with atomic_dir(out_dir) as tmp:
        save(model, tokenizer, tmp)
        write_json(tmp / "pretrain_meta.json", meta)
    return meta
