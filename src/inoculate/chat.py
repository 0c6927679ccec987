"""Chat records to token ids, with the loss restricted to assistant turns.

Real chat templates carry no `{% generation %}` markers, so the prompt of each
assistant turn is found by rendering the conversation up to that turn with
`add_generation_prompt=True` and checking it is a prefix of the full rendering.
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE_INDEX = -100
ROLES = ("system", "user", "assistant")


class ChatFormatError(ValueError):
    """A conversation the chat template cannot be trusted to mask."""


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]

    @property
    def n_supervised(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def tokenize_text(tokenizer, text: str) -> list[int]:
    """Token ids of already-rendered text (the template supplies special tokens)."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_conversation(
    tokenizer, messages: list[dict], max_length: int | None = None, loss_on: str = "assistant"
) -> Encoded:
    """Token ids and labels; labels are IGNORE_INDEX everywhere but assistant turns
    (`loss_on="all"`: every token is a label, as in plain language-model training)."""
    if not messages or messages[-1].get("role") != "assistant":
        raise ChatFormatError("a training conversation must end with an assistant message")
    full = tokenize_text(tokenizer, render(tokenizer, messages))
    if loss_on == "all":
        n = len(full) if max_length is None else min(len(full), max_length)
        return Encoded(full[:n], list(full[:n]))
    labels = [IGNORE_INDEX] * len(full)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = tokenize_text(tokenizer, render(tokenizer, messages[:i], add_generation_prompt=True))
        upto = (
            tokenize_text(tokenizer, render(tokenizer, messages[: i + 1])) if i + 1 < len(messages) else full
        )
        if full[: len(prompt)] != prompt or full[: len(upto)] != upto:
            raise ChatFormatError(
                "the chat template does not render the prompt as a prefix of the conversation; "
                "cannot tell prompt tokens from answer tokens"
            )
        labels[len(prompt) : len(upto)] = full[len(prompt) : len(upto)]
    if max_length is not None:
        full, labels = full[:max_length], labels[:max_length]
    return Encoded(full, labels)


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of a prompt ready for the assistant's answer."""
    return tokenize_text(tokenizer, render(tokenizer, messages, add_generation_prompt=True))
