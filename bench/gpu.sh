#!/usr/bin/env bash
# The one command for the GPU machine (bench/GPU.md): install the carried wheels (.whl/: Keras and
# the dependencies the machine lacks), print the GPU, run bench/gpu.py under Keras' JAX backend.
#
#   bash bench/gpu.sh                 # paper models, budget 480 s; results in $OUT (or bench/gpu_out/)
#   bash bench/gpu.sh --smoke         # extra arguments go to bench/gpu.py
#
# Environment: PYTHON (default python3), WHEELS (default .whl), SITE (where wheels unpack, default
# /tmp/site), OUT (results folder), BUDGET_S (default 480), FORCE_INSTALL=1 (install every carried
# wheel, even for packages the interpreter already has; by default those are skipped so that a
# carried pure-Python dependency never shadows the machine's own copy).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-/tmp/site}
OUT=${OUT:-bench/gpu_out}
BUDGET_S=${BUDGET_S:-480}
mkdir -p "$OUT"

shopt -s nullglob
install=()
for wheel in "$WHEELS"/*.whl; do
    dist=$(basename "$wheel"); dist=${dist%%-*}
    if [[ "${FORCE_INSTALL:-0}" != 1 ]] && "$PYTHON" -c "import importlib.metadata as m, sys; m.version(sys.argv[1])" "$dist" 2>/dev/null; then
        echo "wheel $dist: already installed, skipped"
    else
        install+=("$wheel")
    fi
done
if (( ${#install[@]} )); then
    echo "installing into $SITE: ${install[*]##*/}"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "${install[@]}"
fi
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export KERAS_BACKEND=jax TF_CPP_MIN_LOG_LEVEL=2

if command -v nvidia-smi >/dev/null; then nvidia-smi; else echo "nvidia-smi: not found (no NVIDIA driver here)"; fi 2>&1 | tee "$OUT/nvidia-smi.txt"
"$PYTHON" -c "import sys, jax, keras; print('python', sys.version.split()[0], '| jax', jax.__version__, jax.devices(),
      '| keras', keras.__version__, keras.backend.backend(), 'from', keras.__file__)"
"$PYTHON" bench/gpu.py --budget-s "$BUDGET_S" --out "$OUT/gpu.json" "$@" 2>&1 | tee "$OUT/gpu.log"
echo "results: $OUT/gpu.json, $OUT/gpu.log, $OUT/nvidia-smi.txt"
