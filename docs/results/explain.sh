#!/usr/bin/env bash
# The explanations the README shows (issue 13): docs/results/explain/{stress_predict,synthetic_cue,synthetic_cue_protonet}/.
# Run from the repository root with ../shared/data beside it; W is a new scratch work directory (a sweep run again
# in the same workdir adds budget.trials more trials). Each explain.json records its own date, commit and machine
# ("measured"). About 10 min on a 2-core CPU.
set -euo pipefail
W=${W:-/tmp/ape-nas-explain}
rm -rf docs/results/explain/stress_predict docs/results/explain/synthetic_cue docs/results/explain/synthetic_cue_protonet
# 1. Stress-Predict: the transfer source (one fixed CNN, 18 training/validation subjects), on its 10 test subjects
ape-nas sweep experiments/transfer_source.yaml --workdir "$W/real"
ape-nas explain experiments/transfer_source.yaml --workdir "$W/real" --evaluate --per-class 3 --plots 4 \
    --out docs/results/explain/stress_predict
# 2. the planted cue (ST elevation in half the amusement beats): a CNN sweep, its best trial on its 8 test subjects
ape-nas sweep experiments/synthetic_cue.yaml --workdir "$W/cue"
ape-nas explain experiments/synthetic_cue.yaml --workdir "$W/cue" --evaluate --per-class 4 --plots 4 \
    --out docs/results/explain/synthetic_cue
# 3. the part-based family on the same benchmark: its prototypes, and the same measures for its native map
ape-nas sweep experiments/synthetic_cue_protonet.yaml --workdir "$W/proto"
ape-nas explain experiments/synthetic_cue_protonet.yaml --workdir "$W/proto" --evaluate --per-class 4 --plots 4 \
    --out docs/results/explain/synthetic_cue_protonet
