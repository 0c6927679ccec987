"""Time `snakemake -n` for growing grids of the default study (no job is run).

    python benchmarks/dry_run.py [SEEDS ...]      # default: 3 36 360

Prints one line per grid: seeds, jobs, seconds; writes results/benchmarks/dry_run.json.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def dry_run(n_seeds: int) -> dict:
    seeds = "[" + ",".join(map(str, range(n_seeds))) + "]"
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--forceall", "--config", f"seeds={seeds}"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    seconds = time.perf_counter() - start
    jobs = int(re.search(r"^total\s+(\d+)", proc.stdout + proc.stderr, re.MULTILINE)[1])
    return {"seeds": n_seeds, "jobs": jobs, "seconds": round(seconds, 2)}


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [3, 36, 360]
    rows = [dry_run(n) for n in sizes]
    for r in rows:
        print(f"{r['seeds']:>5} seeds  {r['jobs']:>6} jobs  {r['seconds']:>6.2f} s")
    out = ROOT / "results" / "benchmarks" / "dry_run.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
