#!/usr/bin/env bash
# The GPU benchmarks in one run (about 6 minutes on one H100/H200): LoRA training with Unsloth
# vs transformers, and vLLM generation of 4 adapters' cells from one engine vs an engine per
# cell. Needs the GPU set: pip install torch==2.14.0 -e '.[gpu]'  (see docs/gpu.md).
#
#   bash benchmarks/gpu.sh [DIR]      # default results/benchmarks/gpu; prints the table at the end
#
# Every step is a process of its own, as workflow jobs are; one that fails is reported and the
# rest still run. Copy the table into benchmarks/README.md with the machine, date and commit.
set -uo pipefail
cd "$(dirname "$0")/.."
dir=${1:-results/benchmarks/gpu}
rm -rf "$dir"
mkdir -p "$dir"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false
step() {
    echo "== $*"
    timeout 240 python benchmarks/gpu_backends.py "$@" || echo "!! failed: $*"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$dir/gpu.txt"
python -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)' | tee -a "$dir/gpu.txt"
step prepare "$dir" --adapters 4
step train "$dir" --backend transformers
step train "$dir" --backend unsloth
for k in 0 1 2 3; do
    step generate "$dir" --adapters "$k"
done
step generate "$dir" --adapters all
python benchmarks/gpu_backends.py report "$dir" | tee "$dir/table.md"
