#!/usr/bin/env bash
# The prepared check for a lent CUDA machine (Python 3.12, torch + CUDA, ONNX Runtime on the
# CPU, no TensorRT, no ROS, no network). One command, a few minutes:
#   bash benchmarks/gpu_check.sh          # results in $OUT (or gpu_check_out/)
# 1. the GPU- and TensorRT-marked tests of the backends (TensorRT ones skip without it);
# 2. benchmarks/gpu_core.py: PerceptionCore + OutputBuilder with the torch CUDA backend at
#    1024x2048 for 1 and 3 cameras (inference and host-side ms per frame), and what "auto"
#    chooses on that machine.
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
timeout 240 "$PY" -m pytest -q -p no:cacheprovider -o addopts="" -m "gpu or tensorrt" \
  tests/test_inference.py tests/test_tensorrt_backend.py 2>&1 | tail -15 | tee "$OUT/pytest.txt"
timeout 300 "$PY" benchmarks/gpu_core.py --image 1024x2048 --cameras 1 3 --frames 40 \
  --random-student --out "$OUT/gpu_core.md" 2>&1 | tail -20
