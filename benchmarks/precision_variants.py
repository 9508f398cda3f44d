"""The fp16 and int8 variants against fp32, on the CPU, before any GPU sees them.

    python benchmarks/precision_variants.py --out runs/precision [--model engines/...onnx] \
        [--data runs/synth/evaluation] [--calibration runs/synth/int8-calibration] [--drives 12]

Makes the variants as ``dudes build-engine`` / the node would (``runtime.precision``; int8
calibrated on in-domain frames that neither training nor this evaluation uses), then, each on
ONNX Runtime's CPU provider:

- ``dudes evaluate`` on the held-out scenes (mIoU, error AUROC, anomaly AUROC and AP, FPR@95,
  frame AUROC) at the model's calibrated thresholds;
- side by side with fp32 on the same scenes: pixel label agreement, Pearson r of u and the
  largest |du|;
- the demo's anomaly drives (``benchmarks/ood_alarm_drives.py``'s scoring and debounce): the
  alarm's rise delay per drive, against fp32's.

ONNX Runtime's CPU provider has no fp16 kernels for most ops and computes them in fp32 between
casts, so the fp16 row measures the rounding of weights and of the tensors between fp16 ops,
not TensorRT's fp16 arithmetic; the int8 row runs real int8 convolutions (QLinearConv).
The scales TensorRT uses are the variant's Q/DQ scales, so int8 on the GPU differs from this
only by TensorRT's kernel rounding; benchmarks/gpu_check.sh compares the real engines.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ood_alarm_drives import anomaly_rows, drive_scores  # noqa: E402

from dudes_ros.data.cityscapes import CityscapesDataset  # noqa: E402
from dudes_ros.files import atomic_write_bytes  # noqa: E402
from dudes_ros.inference.onnxruntime_backend import OnnxRuntimePredictor  # noqa: E402
from dudes_ros.perception import OodConfig  # noqa: E402
from dudes_ros.resources import bundled_model  # noqa: E402
from dudes_ros.runtime.manifest import load_manifest  # noqa: E402
from dudes_ros.runtime.precision import ensure_variant  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DUDES = [sys.executable, "-m", "dudes_ros.cli"]
GOALS = "int8: within 1.0 mIoU and 0.01 anomaly AUROC of fp32, r >= 0.98, rise +-1 frame; " \
        "fp16: label agreement >= 99.9 %"


def _make_data(args: argparse.Namespace) -> None:
    """The held-out evaluation scenes and the int8 calibration frames, as
    scripts/build_bundled_model.sh makes them (same seeds)."""
    if not (args.data / "leftImg8bit" / "val").is_dir():
        subprocess.run([*DUDES, "make-synthetic", str(args.data), "--split", "val", "--count",
                        "100", "--size", "128x256", "--seed", "4242", "--anomaly-fraction",
                        "0.5", "--anomaly-kind", "held-out-photo"], check=True)
    if not (args.calibration / "leftImg8bit" / "val").is_dir():
        subprocess.run([*DUDES, "make-synthetic", str(args.calibration), "--split", "val",
                        "--count", "128", "--size", "256x512", "--seed", "777"], check=True)


def _evaluate(model: Path, data: Path, report: Path) -> dict:
    subprocess.run([*DUDES, "evaluate", "--model", str(model), "--data", str(data), "--split",
                    "val", "--backend", "onnxruntime", "--device", "cpu", "--examples", "0",
                    "--report", str(report)], check=True, capture_output=True)
    metrics = json.loads((report / "metrics.json").read_text())
    (row,) = [r for r in metrics["comparison"] if r["method"] == "student_u"]
    return row


def _outputs(model: Path, frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    with OnnxRuntimePredictor(model) as predictor:
        outs = [predictor.predict(f[None]) for f in frames]
    return (np.concatenate([o[0].ravel() for o in outs]),
            np.concatenate([o[1].ravel() for o in outs]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=bundled_model())
    parser.add_argument("--data", type=Path, default=REPO / "runs/synth/evaluation")
    parser.add_argument("--calibration", type=Path, default=REPO / "runs/synth/int8-calibration")
    parser.add_argument("--drives", type=int, default=12)
    parser.add_argument("--out", type=Path, required=True, help="folder for reports")
    args = parser.parse_args()
    start = time.perf_counter()
    _make_data(args)
    cache = args.out / "variants"
    variants = {"fp32": args.model,
                "fp16": ensure_variant(args.model, "fp16", cache).path,
                "int8": ensure_variant(args.model, "int8", cache,
                                       args.calibration / "leftImg8bit" / "val").path}
    made = time.perf_counter() - start
    calibration_frames = list((args.calibration / "leftImg8bit" / "val").rglob("*.png"))
    dataset = CityscapesDataset(args.data, "val")
    frames = [dataset.load(i)["image"] for i in range(len(dataset))]
    rows, agreement = {}, {}
    reference = _outputs(variants["fp32"], frames)
    for name, path in variants.items():
        rows[name] = _evaluate(path, args.data, args.out / f"evaluate-{name}")
        labels, u = _outputs(path, frames)
        agreement[name] = (float(np.mean(labels == reference[0])),
                           float(np.corrcoef(u, reference[1])[0, 1]),
                           float(np.abs(u - reference[1]).max()))
    ood = OodConfig.from_calibration(load_manifest(args.model).get("ood"))
    rises = {}
    for name, path in variants.items():
        with OnnxRuntimePredictor(path) as predictor:
            drives = [drive_scores(predictor, seed, [ood.pixel_threshold])
                      for seed in tqdm(range(args.drives), desc=f"drives {name}", unit="drive")]
        rises[name] = anomaly_rows([(s[0], v) for s, v in drives], ood)["rise"]
    wall = time.perf_counter() - start
    lines = [
        "### Precision variants against fp32 (`benchmarks/precision_variants.py`)", "",
        f"- command: `python benchmarks/precision_variants.py {' '.join(sys.argv[1:])}`",
        f"- machine: {platform.machine()}, Python {platform.python_version()}, ONNX Runtime CPU "
        f"provider; variants made in {made:.0f} s, {wall:.0f} s in all",
        f"- model: `{args.model.name}`; {len(frames)} held-out scenes of `{args.data.name}`; "
        f"int8 calibrated on {len(calibration_frames)} in-domain frames; {args.drives} anomaly "
        f"drives (seeds 0-{args.drives - 1}), "
        f"thresholds pixel {ood.pixel_threshold:.4f} / frame {ood.frame_threshold:.4f}, "
        f"raise_after {ood.raise_after}",
        f"- goals: {GOALS}", "",
        "| precision | size MB | mIoU % | error AUROC | anomaly AUROC | anomaly AP | FPR@95 | "
        "frame AUROC | label agreement with fp32 | r(u, u_fp32) | max abs du | rise delay per "
        "drive (frames) | rise vs fp32 within +-1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, path in variants.items():
        row, (agree, r, du) = rows[name], agreement[name]
        within = sum(a is not None and b is not None and abs(a - b) <= 1
                     for a, b in zip(rises[name], rises["fp32"], strict=True))
        listed = ", ".join("never" if v is None else str(v) for v in rises[name])
        lines.append(
            f"| {name} | {path.stat().st_size / 1e6:.1f} | {100 * row['miou']:.1f} | "
            f"{row['error_auroc']:.3f} | {row['anomaly_auroc']:.3f} | {row['anomaly_ap']:.3f} | "
            f"{row['anomaly_fpr95']:.3f} | {row['frame_auroc']:.3f} | {100 * agree:.3f} % | "
            f"{r:.4f} | {du:.4f} | {listed} | {within}/{len(rises[name])} |")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "precision.md", text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
