#!/usr/bin/env bash
# The prepared check for a lent CUDA machine (Python 3.12, torch + CUDA, ONNX Runtime on the
# CPU, no TensorRT, no ROS, no network). One command, a few minutes:
#   bash benchmarks/gpu_check.sh          # results in $OUT (or gpu_check_out/)
# 1. the GPU- and TensorRT-marked tests of the backends (TensorRT ones skip without it);
# 2. benchmarks/gpu_core.py: PerceptionCore + OutputBuilder with the torch CUDA backend at
#    1024x2048 for 1 and 3 cameras (inference and host-side ms per frame), and what "auto"
#    chooses on that machine;
# 3. where TensorRT and cuda-python import (a machine with real TensorRT 10.3+ or 11.x):
#    benchmarks/tensorrt_check.py builds the fp32, fp16 and int8 engines of the bundled model,
#    compares them with ONNX Runtime fp32 (label agreement, max |du|), times 1 and 3 cameras at
#    1024x2048 and reports the TensorRT version and the engines' device memory.
# Under 8 minutes on one GPU (the timeouts below add up to 7.5).
# Packages the machine lacks are installed from benchmarks/gpu_wheels/ when it was carried
# along (make it here with scripts/gpu_wheels.sh; it is git-ignored).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
if [ -d benchmarks/gpu_wheels ]; then
  "$PY" -m pip install --quiet --no-index --find-links benchmarks/gpu_wheels \
    benchmarks/gpu_wheels/*.whl 2>&1 | tail -3
fi
"$PY" - <<'PY' | tee "$OUT/environment.txt"
import importlib.util, platform
print("python", platform.python_version())
for name in ("torch", "onnxruntime", "onnx", "onnx2torch", "segmentation_models_pytorch",
             "rosbags", "cv2", "tensorrt", "cuda.bindings.runtime", "pytest"):
    try:
        found = importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        found = False
    print(f"{name}: {'yes' if found else 'MISSING'}")
PY
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
timeout 90 "$PY" -m pytest -q -p no:cacheprovider -o addopts="" -m "gpu or tensorrt" \
  tests/test_inference.py tests/test_tensorrt_backend.py 2>&1 | tail -15 | tee "$OUT/pytest.txt"
timeout 120 "$PY" benchmarks/gpu_core.py --image 1024x2048 --cameras 1 3 --frames 40 \
  --random-student --out "$OUT/gpu_core.md" 2>&1 | tail -20
if "$PY" -c "import tensorrt, cuda.bindings.runtime" 2>/dev/null; then
  timeout 240 "$PY" benchmarks/tensorrt_check.py --frames 40 --out "$OUT/tensorrt.md" 2>&1 \
    | tail -12
else
  echo "tensorrt_check: skipped, tensorrt or cuda-python does not import here" | \
    tee "$OUT/tensorrt.md"
fi
