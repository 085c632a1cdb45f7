#!/usr/bin/env bash
# Checkpoint averaging on the real 2018 video-level shards, with the toolkit's own commands: train
# `video` on validate0000-0079 with a checkpoint every 100 steps, then score on the held-out
# validate0080-0099 (a) the latest checkpoint, (b) the mean of the last 5 with their averaged
# batch-norm statistics (--no-bn-update), (c) the same mean with the statistics recomputed on
# training batches (the default). Usage: bash bench/averaging_real.sh [OUT_DIR]  (~5-10 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/yt8m_averaging_real}
DATA=${DATA:-${YT8M_DATA:-../shared/data/yt8m_2018_video}/validate}
TRAIN="$DATA/validate00[0-7]?.tfrecord"
HELD="$DATA/validate008?.tfrecord,$DATA/validate009?.tfrecord"
PY=${PYTHON:-.venv/bin/python}
SEED=${SEED:-0}
export TF_CPP_MIN_LOG_LEVEL=2
RUN="$OUT/video-seed$SEED"
mkdir -p "$OUT"
$PY -m yt8m_kit.train --model video --train "$TRAIN" --out "$RUN" --checkpoint-every 100 --keep 6 \
    --seed "$SEED" --no-progress > "$RUN.train.json"
latest=$(ls -d "$RUN"/ckpt-0* | tail -1)
echo "latest: $latest"
$PY -m yt8m_kit.evaluate --checkpoint "$latest" --data "$HELD" --json --save-predictions "$RUN.latest.h5" > "$RUN.latest.json"
$PY -m yt8m_kit.average "$RUN" --last 5 --no-bn-update --out "$RUN/avg-no-bn"
$PY -m yt8m_kit.evaluate --checkpoint "$RUN/avg-no-bn" --data "$HELD" --json > "$RUN.avg_no_bn.json"
$PY -m yt8m_kit.average "$RUN" --last 5
$PY -m yt8m_kit.evaluate --checkpoint "$RUN" --data "$HELD" --json --save-predictions "$RUN.avg_bn.h5" > "$RUN.avg_bn.json"
for f in latest avg_no_bn avg_bn; do
  printf '%-10s ' "$f"; $PY -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"GAP {r['gap']:.4f}  videos {r['videos']}\")" "$RUN.$f.json"
done
echo "latest (A) against the average with BN recomputed (B), paired bootstrap over the held-out videos:"
$PY bench/paired_bootstrap.py "$RUN.latest.h5" "$RUN.avg_bn.h5"
