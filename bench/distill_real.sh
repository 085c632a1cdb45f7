#!/usr/bin/env bash
# Issue 18's distillation check on real data: `video` trained on validate0000-0079 with the real-data
# ensemble of bench/ensemble_real.sh as its teacher (train --teacher, lambda 0.5), against the same model,
# same seed, trained on the labels alone (that script's video_s0). Both are scored on validate0090-0099,
# which neither the teacher's members, its planner nor the students saw, and compared by a paired bootstrap.
# Usage: bash bench/distill_real.sh [OUT_DIR]   (OUT_DIR of bench/ensemble_real.sh; ~5 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/yt8m_ensemble_real}
DATA=${DATA:-${YT8M_DATA:-../shared/data/yt8m_2018_video}/validate}
TRAIN="$DATA/validate00[0-7]?.tfrecord"
REPORT="$DATA/validate009?.tfrecord"
PY=${PYTHON:-.venv/bin/python}
test -f "$OUT/submission/ensemble.keras" || { echo "run bench/ensemble_real.sh $OUT first"; exit 2; }
start=$(date +%s)
$PY -m yt8m_kit.train --model video --seed 0 --train "$TRAIN" --out "$OUT/distilled/video_t" \
    --teacher "$OUT/submission" --no-progress > "$OUT/video_t.train.json"
echo "video_t (distilled): trained in $(( $(date +%s) - start )) s"
$PY -m yt8m_kit.evaluate --checkpoint "$OUT/distilled/video_t" --data "$REPORT" --json \
    --save-predictions "$OUT/video_t.h5" | tee "$OUT/video_t.eval.json"
echo "A = video trained on labels (video_s0), B = video distilled from the ensemble:"
$PY bench/paired_bootstrap.py "$OUT/video_s0.h5" "$OUT/video_t.h5" | tee "$OUT/distill_bootstrap.txt"
