#!/usr/bin/env bash
# Reproduce the bundled student in engines/: the synthetic recipe (M = 5 members + student, all
# on CPU), export, OOD calibration on held-out in-domain synthetic frames, evaluation report.
# Resumable: finished members are skipped, an interrupted run continues from its last.pt.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${OUT:-runs/synth}
DEVICE=${DEVICE:-cpu}
dudes=.venv/bin/dudes
for i in 0 1 2 3 4; do
  $dudes train-teacher --recipe synthetic --member-index "$i" --out "$OUT" --device "$DEVICE"
done
$dudes train-student --recipe synthetic --out "$OUT" --device "$DEVICE"
# Calibration data: in-domain synthetic frames at the demo's camera size, never seen in training;
# 1000 of them, so that the 1 % tail of the frame score rests on 10 frames, not 2.
[ -d "$OUT/calibration/leftImg8bit/val" ] || \
  $dudes make-synthetic "$OUT/calibration" --split val --count 1000 --size 256x512 --seed 777
$dudes export "$OUT/student/best.pt" -o engines/dudes_student.onnx --name dudes_student_synthetic
$dudes calibrate --model engines/dudes_student.onnx --data "$OUT/calibration" --split val \
  --false-alarm-rate 0.01
# Evaluation data: held-out scenes, half of them with a real-photo anomaly that training never
# showed (anomalies.HELD_OUT_PHOTOS; the members saw procedural shapes and other photos).
[ -d "$OUT/evaluation/leftImg8bit/val" ] || \
  $dudes make-synthetic "$OUT/evaluation" --split val --count 100 --size 128x256 --seed 4242 \
    --anomaly-fraction 0.5 --anomaly-kind held-out-photo
$dudes evaluate --data "$OUT/evaluation" --split val --student "$OUT/student/best.pt" \
  --teacher "$OUT"/member-0?/best.pt --member "$OUT/member-00/best.pt" \
  --model engines/dudes_student.onnx --report "$OUT/eval"
