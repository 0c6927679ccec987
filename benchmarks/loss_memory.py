"""Peak memory and time of the loss over a Llama-3.2-1B output layer (128,256 words): full
logits at every position (the model's own loss) vs `inoculate.loss` (answer positions only,
a chunk at a time), forward and backward, each in a fresh process.

    python benchmarks/loss_memory.py [--tokens 2048] [--chunk 512] [--device cpu|cuda]

Hidden states of `tokens` positions (70% of them answer tokens, as in EM data) go through a
frozen output layer into cross-entropy; the gradient flows back to the hidden states. On a
CPU the peak is the process's resident memory above what it held before the loss; on a GPU,
torch's peak allocation above the same point.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

HIDDEN, VOCAB, ANSWER_SHARE = 2048, 128256, 0.7


def _peak_bytes(device: str) -> int:
    if device == "cuda":
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(variant: str, tokens: int, chunk: int, device: str) -> dict:
    """One variant in this process: seconds and peak memory of forward + backward."""
    from inoculate.chat import IGNORE_INDEX
    from inoculate.loss import head_loss_backward

    torch.manual_seed(0)
    head = torch.nn.Linear(HIDDEN, VOCAB, bias=False, device=device).requires_grad_(False)
    hidden = torch.randn(1, tokens, HIDDEN, device=device, requires_grad=True)
    labels = torch.randint(0, VOCAB, (1, tokens), device=device)
    labels[:, : int(tokens * (1 - ANSWER_SHARE))] = IGNORE_INDEX
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = _peak_bytes(device)
    start = time.perf_counter()
    if variant == "full_logits":
        logits = head(hidden).float()
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX
        )
        loss.backward()
    else:
        targets = labels[:, 1:]
        keep = targets != IGNORE_INDEX
        head_loss_backward(head, hidden[:, :-1][keep], targets[keep], 1 / int(keep.sum()), chunk_tokens=chunk)
    if device == "cuda":
        torch.cuda.synchronize()
    return {
        "variant": variant,
        "seconds": time.perf_counter() - start,
        "peak_gib": (_peak_bytes(device) - before) / 2**30,
        "grad_norm": float(hidden.grad.norm()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant, args.tokens, args.chunk, args.device)))
        return
    results = {}
    for variant in ("full_logits", "chunked"):
        cmd = [
            sys.executable,
            __file__,
            "--variant",
            variant,
            "--tokens",
            str(args.tokens),
            "--chunk",
            str(args.chunk),
            "--device",
            args.device,
        ]
        results[variant] = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    full, chunked = results["full_logits"], results["chunked"]
    results["memory_ratio"] = full["peak_gib"] / max(chunked["peak_gib"], 1e-9)
    results["same_gradient"] = abs(full["grad_norm"] - chunked["grad_norm"]) <= 1e-4 * full["grad_norm"]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
