#!/usr/bin/env bash
# The transfer results the README shows (issue 12): docs/results/transfer/{stress_predict,synth_pretrained}/transfer.{json,png}.
# Run from the repository root with ../shared/data beside it; W is a scratch work directory. Each transfer.json
# records its own date, commit and machine ("measured"). About 2 × 25 min on a 2-core CPU (the two transfers
# can run side by side with OMP_NUM_THREADS=1 each).
set -euo pipefail
W=${W:-/tmp/ape-nas-transfer}
M=weighting,weighting+shift,head,finetune,bn,scratch
# 1. the source trained on 18 real Stress-Predict subjects (10 held out: the transfer targets)
ape-nas sweep experiments/transfer_source.yaml --workdir "$W/real"
ape-nas export experiments/transfer_source.yaml --workdir "$W/real" --out "$W/real-bundle" --no-register
# 2. the same architecture pretrained on a generated wrist cohort (APE axis 2)
ape-nas synth --out "$W/synth-stress" --subjects 40 --minutes-per-state 10 --class-names no-stress,stress --seed 1
ape-nas sweep experiments/synth_pretrain.yaml --workdir "$W/synth" --set data.params.path="$W/synth-stress"
ape-nas export experiments/synth_pretrain.yaml --workdir "$W/synth" --set data.params.path="$W/synth-stress" \
    --out "$W/synth-bundle" --no-register
# 3. both adapted to the 10 held-out Stress-Predict subjects, every method, K = 1, 5, 20, both protocols
TARGETS=$(python -c "import json; print(','.join(json.load(open('$W/real-bundle/metrics.json'))['split']['test']))")
ape-nas transfer "$W/real-bundle" --data ../shared/data/stress-predict --method $M --shots 1,5,20 --repeats 2 \
    --results docs/results/transfer/stress_predict --workdir "$W/real"
ape-nas transfer "$W/synth-bundle" --data ../shared/data/stress-predict --subjects "$TARGETS" --method $M \
    --shots 1,5,20 --repeats 2 --results docs/results/transfer/synth_pretrained --workdir "$W/synth"
