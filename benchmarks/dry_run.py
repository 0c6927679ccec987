"""Time `snakemake -n` for growing grids of the default study (no job is run), beside the floor
of starting Snakemake at all (`snakemake --version`, which imports it and its plugins).

    python benchmarks/dry_run.py [SEEDS ...]      # default: 3 36 360

Prints one line per grid: seeds, jobs, seconds (and the floor); writes
results/benchmarks/dry_run.json. Each figure is the best of three runs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _best_of(command: list[str], runs: int = 3) -> tuple[float, str]:
    best, output = float("inf"), ""
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
        best = min(best, time.perf_counter() - start)
        output = proc.stdout + proc.stderr
    return best, output


def floor() -> float:
    """Starting Snakemake and exiting: the least a dry run can take."""
    return round(_best_of([sys.executable, "-m", "snakemake", "--version"])[0], 2)


def dry_run(n_seeds: int) -> dict:
    seeds = "[" + ",".join(map(str, range(n_seeds))) + "]"
    seconds, output = _best_of(
        [sys.executable, "-m", "snakemake", "-n", "--forceall", "--config", f"seeds={seeds}"]
    )
    jobs = int(re.search(r"^total\s+(\d+)", output, re.MULTILINE)[1])
    return {"seeds": n_seeds, "jobs": jobs, "seconds": round(seconds, 2)}


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [3, 36, 360]
    base = floor()
    rows = [{"seeds": 0, "jobs": 0, "seconds": base, "what": "snakemake --version (the floor)"}]
    rows += [dry_run(n) for n in sizes]
    for r in rows:
        print(f"{r['seeds']:>5} seeds  {r['jobs']:>6} jobs  {r['seconds']:>6.2f} s  {r.get('what', '')}")
    out = ROOT / "results" / "benchmarks" / "dry_run.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
