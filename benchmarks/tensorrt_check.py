"""The real TensorRT engines of the bundled model, for a machine that has TensorRT and a GPU.

    python benchmarks/tensorrt_check.py --out gpu_check_out/tensorrt.md [--frames 40]

For fp32, fp16 and int8 (variants made on the CPU, int8 calibrated on 64 in-domain synthetic
frames made here): builds the engine (batch 1..3, 1024x2048), compares its outputs on the same
frames with ONNX Runtime fp32 on the CPU (pixel label agreement, max |du|), times ``predict``
p50 / p95 for 1 and 3 cameras at 1024x2048, and reports the TensorRT version, the build time,
the engine's device memory for its largest shape and the context memory actually held. No ROS.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dudes_ros.export.parity import parity_images  # noqa: E402
from dudes_ros.files import atomic_write_bytes  # noqa: E402
from dudes_ros.inference.factory import create_predictor  # noqa: E402
from dudes_ros.resources import bundled_model  # noqa: E402
from dudes_ros.runtime.tensorrt_engine import EngineSettings  # noqa: E402

SIZE = (1024, 2048)


def timed(predictor, images: np.ndarray, frames: int) -> str:
    predictor.predict(images)  # warm-up
    spent = []
    for _ in range(frames):
        start = time.perf_counter()
        predictor.predict(images)
        spent.append((time.perf_counter() - start) * 1e3)
    p50, p95 = np.percentile(spent, [50, 95])
    return f"{p50:.2f} / {p95:.2f}"


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--out", type=Path, required=True)
    cli.add_argument("--frames", type=int, default=40)
    cli.add_argument("--device", default="cuda")
    args = cli.parse_args()
    import tensorrt

    work = args.out.parent / "tensorrt_work"
    calibration = work / "calibration"
    if not (calibration / "leftImg8bit").is_dir():
        subprocess.run([sys.executable, "-m", "dudes_ros.cli", "make-synthetic",
                        str(calibration), "--split", "val", "--count", "64", "--size",
                        "256x512", "--seed", "777"], check=True)
    compare = parity_images(3, *SIZE, seed=5)
    with create_predictor(bundled_model(), backend="onnxruntime", device="cpu") as ort:
        reference = ort.predict(compare)
    lines = [
        "### TensorRT engines of the bundled model (`benchmarks/tensorrt_check.py`)", "",
        f"- TensorRT {tensorrt.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}; image {SIZE[0]}x{SIZE[1]}, {args.frames} timed calls", "",
        "| precision | build s | label agreement with ORT fp32 | max abs du | p50 / p95 ms, 1 "
        "camera | p50 / p95 ms, 3 cameras | engine memory for its largest shape MiB | context "
        "memory held MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for precision in ("fp32", "fp16", "int8"):
        settings = EngineSettings(
            precision=precision, max_batch=3, opt_size=SIZE, max_size=SIZE,
            cache_dir=str(work / "engines"),
            calibration_folder=str(calibration / "leftImg8bit" / "val")
            if precision == "int8" else None)
        predictor = create_predictor(bundled_model(), backend="tensorrt", device=args.device,
                                     engine=settings)
        labels, u = predictor.predict(compare)
        agreement = float(np.mean(labels == reference[0]))
        du = float(np.abs(u - reference[1]).max())
        one = timed(predictor, compare[:1], args.frames)
        three = timed(predictor, compare, args.frames)
        info = predictor.provenance()
        lines.append(
            f"| {precision} | {predictor.outcome.build_seconds:.0f} | {100 * agreement:.3f} % | "
            f"{du:.4f} | {one} | {three} | "
            f"{info['engine_device_memory_max_bytes'] / 2**20:.0f} | "
            f"{info['context_device_memory_bytes'] / 2**20:.0f} |")
        predictor.close()
    text = "\n".join(lines) + "\n"
    atomic_write_bytes(args.out, text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
