#!/usr/bin/env bash
# Reproduces the `video` vs logistic-regression numbers of bench/VIDEO_SEARCH.md with the toolkit's
# own commands: train on real shards validate0000-0079, score on held-out validate0080-0099.
# Usage: bash bench/video_real.sh [OUT_DIR]   (about 10-20 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/yt8m_video_real}
DATA=${DATA:-${YT8M_DATA:-../shared/data/yt8m_2018_video}/validate}
TRAIN="$DATA/validate00[0-7]?.tfrecord"
HELD="$DATA/validate008?.tfrecord,$DATA/validate009?.tfrecord"
PY=${PYTHON:-.venv/bin/python}
export TF_CPP_MIN_LOG_LEVEL=2
for model in video video_logistic; do
  start=$(date +%s)
  $PY -m yt8m_kit.train --model $model --train "$TRAIN" --out "$OUT/$model" --no-progress > "$OUT.$model.train.json"
  end=$(date +%s)
  echo "$model: trained in $((end - start)) s"
  $PY -m yt8m_kit.evaluate --checkpoint "$OUT/$model" --data "$HELD" --json | tee "$OUT.$model.eval.json"
done
