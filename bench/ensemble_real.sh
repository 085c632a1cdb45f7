#!/usr/bin/env bash
# Issue 16's proof on real data, with the user's commands only: three video-level runs trained with
# the toolkit's defaults on the real shards validate0000-0079, the planner on 0080-0089 (which it
# splits again: half choose, half report), inference to a Kaggle CSV and scoring on 0090-0099, which
# neither training nor planning saw. Every member is scored on 0090-0099 too, and the CSV is compared
# with the best of them by a paired bootstrap over those videos.
# Usage: bash bench/ensemble_real.sh [OUT_DIR]   (about 20-40 minutes on 2 shared cores)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/yt8m_ensemble_real}
DATA=${DATA:-${YT8M_DATA:-../shared/data/yt8m_2018_video}/validate}
TRAIN="$DATA/validate00[0-7]?.tfrecord"
CHOOSE="$DATA/validate008?.tfrecord"
REPORT="$DATA/validate009?.tfrecord"
PY=${PYTHON:-.venv/bin/python}
export TF_CPP_MIN_LOG_LEVEL=2
mkdir -p "$OUT/runs"
train() {  # name, then train's arguments
  local name=$1; shift
  local start; start=$(date +%s)
  $PY -m yt8m_kit.train --train "$TRAIN" --out "$OUT/runs/$name" --no-progress "$@" > "$OUT/$name.train.json"
  echo "$name: trained in $(( $(date +%s) - start )) s"
}
train video_s0 --model video --seed 0
train video_s1 --model video --seed 1
train video_moe --model video_moe --seed 0
$PY submit.py --budget 1GB --runs "$OUT/runs" --valid "$CHOOSE" --out "$OUT/submission" | tee "$OUT/submit.txt"
$PY inference.py --model "$OUT/submission" --input "$REPORT" --output "$OUT/ensemble.csv" --quiet
$PY -m yt8m_kit.evaluate --predictions "$OUT/ensemble.csv" --data "$REPORT" --json | tee "$OUT/ensemble.eval.json"
best=""; best_gap=0
for run in video_s0 video_s1 video_moe; do
  $PY -m yt8m_kit.evaluate --checkpoint "$OUT/runs/$run" --data "$REPORT" --json \
      --save-predictions "$OUT/$run.h5" | tee "$OUT/$run.eval.json"
  gap=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['gap'])" "$OUT/$run.eval.json")
  if $PY -c "import sys; sys.exit(not float(sys.argv[1]) > float(sys.argv[2]))" "$gap" "$best_gap"; then
    best=$run; best_gap=$gap
  fi
done
echo "best member on 0090-0099: $best ($best_gap); A = best member, B = the ensemble's CSV:"
$PY bench/paired_bootstrap.py "$OUT/$best.h5" "$OUT/ensemble.csv" | tee "$OUT/bootstrap.txt"
