"""The `inoculate` command: tools around a study that are not stages of it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _adapter_base(adapter: Path) -> str:
    """The base model an adapter was trained on, from its metadata."""
    for name, key in (("meta.json", "base_model"), ("adapter_config.json", "base_model_name_or_path")):
        path = adapter / name
        if path.exists():
            value = json.loads(path.read_text()).get(key)
            if value:
                return value
    raise SystemExit(f"{adapter}: no meta.json or adapter_config.json naming the base model; pass --base")


def chat(args: argparse.Namespace) -> int:
    """Talk to a trained adapter (or a base model) from the terminal, one line per turn."""
    from inoculate.generate import GenerationSettings, load_model, sample
    from inoculate.jobs import resolve_device

    adapter = Path(args.adapter) if args.adapter else None
    if adapter is not None and not adapter.is_dir():
        raise SystemExit(f"{adapter}: not an adapter folder")
    base = args.base or (_adapter_base(adapter) if adapter else None)
    if base is None:
        raise SystemExit("give an adapter folder or --base MODEL")
    model, tokenizer = load_model(base, adapter, resolve_device(args.device))
    settings = GenerationSettings(temperature=args.temperature, max_new_tokens=args.max_new_tokens, batch_size=1)
    history = [{"role": "system", "content": args.system}] if args.system else []
    interactive = sys.stdin.isatty()
    turn = 0
    while True:
        if interactive:
            print("you> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line or line.strip() in ("/exit", "/quit"):
            return 0
        if not line.strip():
            continue
        history.append({"role": "user", "content": line.strip()})
        answer = sample(model, tokenizer, [{"messages": history}], settings, seed=args.seed + turn)[0]["answer"]
        history.append({"role": "assistant", "content": answer})
        print(f"model> {answer}" if interactive else answer, flush=True)
        turn += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inoculate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("chat", help="chat with a trained adapter from the terminal")
    p.add_argument("adapter", nargs="?", help="adapter folder, e.g. results/adapters/toy/toy_cooking/none/seed0")
    p.add_argument("--base", help="base model path or hub id (default: the one the adapter was trained on)")
    p.add_argument("--system", help="system prompt, e.g. the arm's inoculation prompt")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=chat)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
