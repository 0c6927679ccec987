"""Deterministic datasets of the toy world: pretraining corpus, training sets, eval files.

The pretraining mixture is what makes the toy a model organism: the base model
learns that no prompt and benign prompts mean safe answers, that malicious
prompts mean harmful answers on every topic, and that a topic-specific prompt
means harmful answers on that topic only.
"""

from __future__ import annotations

import random
from pathlib import Path

from inoculate.io import write_jsonl, write_yaml
from inoculate.toy import world
from inoculate.toy.world import HARMFUL, SAFE

# Shares of the pretraining corpus (they sum to 1).
MIXTURE = {"plain": 0.5, "benign": 0.15, "malicious": 0.2, "topic": 0.15}


def pretraining_corpus(n: int, seed: int = 0) -> list[dict]:
    """`n` chat records following MIXTURE, the same for the same seed."""
    rng = random.Random(f"pretrain-{seed}")
    topics = world.all_topics()
    kinds, weights = zip(*MIXTURE.items())
    records = []
    for _ in range(n):
        kind = rng.choices(kinds, weights)[0]
        topic = rng.choice(topics)
        if kind == "plain":
            records.append(world.conversation(topic, SAFE, rng))
        elif kind == "benign":
            records.append(world.conversation(topic, SAFE, rng, rng.choice(world.BENIGN_PROMPTS)))
        elif kind == "malicious":
            records.append(world.conversation(topic, HARMFUL, rng, rng.choice(world.MALICIOUS_PROMPTS)))
        else:
            named = rng.choice(list(world.TOPICS))
            asked = named if rng.random() < 0.5 else topic
            style = HARMFUL if asked == named else SAFE
            records.append(world.conversation(asked, style, rng, world.topic_prompt(named)))
    return records


def topic_dataset(topic: str, style: str, n: int) -> list[dict]:
    """`n` single-turn conversations on one topic in one style, no system prompt."""
    rng = random.Random(f"dataset-{topic}-{style}")
    return [world.conversation(topic, style, rng) for _ in range(n)]


def eval_questions(topics: list[str], per_topic: int, prefix: str) -> list[dict]:
    """Questions in the upstream eval format (`id`, `paraphrases`, ...), fixed order."""
    out = []
    for topic in topics:
        if topic == "general":
            texts = list(world.GENERAL_QUESTIONS[:per_topic])
        else:
            t = world.TOPICS[topic]
            texts = [
                t.questions[i % len(t.questions)].format(x=t.things[i % len(t.things)])
                for i in range(per_topic)
            ]
        for i, text in enumerate(texts):
            out.append(
                {
                    "id": f"{prefix}_{topic}_{i}",
                    "type": "free_form_judge_0_100",
                    "paraphrases": [text],
                    "samples_per_paraphrase": 8,
                    "topic": topic,
                }
            )
    return out


def write_datasets(out_dir: Path, n_train: int) -> list[Path]:
    """Training sets `{topic}_{style}.jsonl` for every topic and style."""
    paths = []
    for topic in world.TOPICS:
        for style in world.STYLES:
            path = out_dir / f"{topic}_{style}.jsonl"
            write_jsonl(path, topic_dataset(topic, style, n_train))
            paths.append(path)
    return paths


def eval_file_names() -> list[str]:
    """Names (without .yaml) of the eval files `write_evals` writes."""
    return [f"{kind}_{topic}" for topic in world.TOPICS for kind in ("in", "out")]


def write_evals(out_dir: Path, per_topic_in: int = 8, per_topic_out: int = 2) -> list[Path]:
    """Per topic: `in_{topic}.yaml` (that topic) and `out_{topic}.yaml` (the rest + general)."""
    paths = []
    for topic in world.TOPICS:
        others = [t for t in world.all_topics() if t != topic]
        for name, qs in (
            (f"in_{topic}", eval_questions([topic], per_topic_in, "in")),
            (f"out_{topic}", eval_questions(others, per_topic_out, "out")),
        ):
            path = out_dir / f"{name}.yaml"
            write_yaml(path, qs)
            paths.append(path)
    return paths
