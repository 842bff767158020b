#!/usr/bin/env bash
# The first check of the CUDA path on a GPU machine, in at most 8 minutes:
#   1. install as the README says, into a fresh virtual environment (python3 -m venv,
#      pip install torch==2.13.0 -- on a GPU machine PyPI's default torch wheel is a CUDA build --,
#      pip install -e ".[dev]");
#   2. pytest -m gpu -q (tests/test_gpu.py: CUDA fp32 and fp16 features against the CPU's, per
#      family; a batch too large for the GPU is one line);
#   3. the speed bench on the GPU: `clipaction bench --device cuda`, fp32 and fp16. The bench's CLI
#      has no flag for its fast precision and defaults to int8 (a CPU-only precision), so this
#      calls the same library function, run_bench, with fast_precision="fp16".
# Everything it writes goes under OUT_DIR: pip.log, pytest.log, bench-cuda.json, bench.log,
# summary.txt. Exit status: 0 when every step passed, else the first failing step's.
#
# usage: benchmarks/gpu_check.sh OUT_DIR
#   VENV=path       the virtual environment to create (default: .venv-gpu in the repository)
#   NO_INSTALL=1    skip step 1 and use $PY (default python3) as it is (a machine where torch
#                   with CUDA and clipaction's dependencies are installed, or that cannot reach PyPI)
#   DEVICE=cuda     the bench's device; FAST=fp16 its fast precision; VIDEOS=24 its videos
set -uo pipefail

OUT=${1:?usage: benchmarks/gpu_check.sh OUT_DIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-gpu}
DEVICE=${DEVICE:-cuda}
FAST=${FAST:-fp16}
VIDEOS=${VIDEOS:-24}
DEADLINE=$((SECONDS + 480))  # the whole check: 8 minutes
status=0

left() {  # seconds left before the deadline (at least 1, so `timeout` gets a valid duration)
    local seconds=$((DEADLINE - SECONDS))
    echo $((seconds > 0 ? seconds : 1))
}
step() {  # step NAME LOG COMMAND...: run COMMAND within the time left, log it, record failures
    local name=$1 log=$2 rc
    shift 2
    echo "== $name ($(left) s left)" | tee -a "$OUT/summary.txt"
    timeout "$(left)" "$@" >>"$log" 2>&1
    rc=$?
    if ((rc == 124)); then
        echo "   $name: stopped at the 8-minute limit" | tee -a "$OUT/summary.txt"
    fi
    echo "   $name: exit $rc (log: $log)" | tee -a "$OUT/summary.txt"
    if ((rc != 0 && status == 0)); then status=$rc; fi
    return $rc
}

: >"$OUT/summary.txt"
if [[ "${NO_INSTALL:-0}" == 1 ]]; then
    PY=${PY:-python3}
else
    PY="$VENV/bin/python"
    step venv "$OUT/pip.log" python3 -m venv "$VENV" || exit $status
    step torch "$OUT/pip.log" "$PY" -m pip install torch==2.13.0 || exit $status
    step clipaction "$OUT/pip.log" "$PY" -m pip install -e ".[dev]" || exit $status
fi

"$PY" - <<'EOF' | tee -a "$OUT/summary.txt"
import torch
name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, device: {name}")
EOF
if [[ "$DEVICE" == cuda ]] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    # the gpu tests would all skip and pass: say so instead
    echo "torch sees no CUDA device: nothing to check (exit 1)" | tee -a "$OUT/summary.txt"
    exit 1
fi

# -p no:cacheprovider: nothing written into the repository's .pytest_cache; a test module that
# cannot be imported (an extra not installed) is reported, and the gpu tests still run
step "pytest -m gpu" "$OUT/pytest.log" "$PY" -m pytest -m gpu -q -rs -p no:cacheprovider --continue-on-collection-errors
tail -n 3 "$OUT/pytest.log" | tee -a "$OUT/summary.txt"

export GPU_CHECK_JSON="$OUT/bench-cuda.json" GPU_CHECK_DEVICE="$DEVICE" GPU_CHECK_FAST="$FAST" GPU_CHECK_VIDEOS="$VIDEOS"
step "bench --device $DEVICE" "$OUT/bench.log" "$PY" - <<'EOF'
import json
import logging
import os

import torch

from clipaction.config import BenchConfig
from clipaction.outputs import to_jsonable
from clipaction.speed.run import run_bench

logging.basicConfig(level=logging.INFO)
config = BenchConfig(
    videos=int(os.environ["GPU_CHECK_VIDEOS"]),
    device=os.environ["GPU_CHECK_DEVICE"],
    fast_precision=os.environ["GPU_CHECK_FAST"],
)
# the GPU alone: no Ray engine rows, no OpenVINO (a CPU runtime) rows
results = run_bench(config, ray=False, openvino=False)
results["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
with open(os.environ["GPU_CHECK_JSON"], "w", encoding="utf-8") as out:
    json.dump(to_jsonable(results), out, indent=2)
fast = results["fast"]
print(
    f"{results['gpu'] or results['machine']['device']}: fp32 {results['model_fps']:.0f} frames/s (batch {results['batch_size']}), "
    f"{fast['precision']} {fast['model_fps']:.0f} frames/s, cosine min {results['fast_cosine_min']}"
)
EOF
tail -n 1 "$OUT/bench.log" | tee -a "$OUT/summary.txt"
echo "total: $SECONDS s, exit $status" | tee -a "$OUT/summary.txt"
exit $status
