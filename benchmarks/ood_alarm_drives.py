"""How fast the OOD alarm rises, and how often it is on for nothing, on synthetic drives.

    python benchmarks/ood_alarm_drives.py --out /tmp/ood_alarm.md [--model engines/...onnx] \
        [--drives 12] [--free-drives 30] [--raise-after 2 3] [--also PIXEL FRAME ...]

Two sets of the demo's drives (``demo.sources.synthetic_drive``: 256x512, 72 frames, a
held-out photo slides onto the road at frame 24 and leaves at 48):

- **anomaly drives**, seeds 0..N-1 (seed 4 is the demo's): rise delay, clear delay and false
  alarm frames exactly as ``dudes demo`` reports them (``demo.report.summarize``);
- **anomaly-free frames**, seeds 100.. (frames 0-23 and 48-71 of each drive, where no object
  is in view): the share of frames over the frame threshold and of frames with the alarm on.

Each frame goes through the deploy graph (ONNX Runtime, CPU) and the node's own scoring
(``ood.uncertain_fraction``) and debounce (``ood.Hysteresis``), at the manifest's calibrated
thresholds and at each ``--also`` pair, side by side from the same frames. Each
``--raise-after`` replays the same scores.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dudes_ros.demo.report import FrameRecord, summarize  # noqa: E402
from dudes_ros.demo.sources import synthetic_drive  # noqa: E402
from dudes_ros.inference.onnxruntime_backend import OnnxRuntimePredictor  # noqa: E402
from dudes_ros.ood import DEFAULT_CLEAR_AFTER, Hysteresis, uncertain_fraction  # noqa: E402
from dudes_ros.perception import OodConfig  # noqa: E402
from dudes_ros.resources import bundled_model  # noqa: E402
from dudes_ros.runtime.manifest import load_manifest  # noqa: E402

FREE_SEED = 100


def drive_scores(predictor: OnnxRuntimePredictor, seed: int,
                 pixel_thresholds: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """``(scores [len(pixel_thresholds), frames], in_view bool [frames])`` of one drive."""
    drive = synthetic_drive(seed)
    maps = [predictor.predict(frame[None])[1][0] for frame in drive.frames()]
    scores = [[uncertain_fraction(u, t) for u in maps] for t in pixel_thresholds]
    return np.array(scores), np.array(drive.in_view)


def alarm_states(scores: np.ndarray, ood: OodConfig) -> np.ndarray:
    hysteresis = Hysteresis(ood.frame_threshold, ood.raise_after, ood.clear_after)
    return np.array([hysteresis.update(float(s)) for s in scores])


def anomaly_rows(drives: list[tuple[np.ndarray, np.ndarray]], ood: OodConfig) -> dict:
    """Per drive, the demo summary's rise and clear delays (None: never), and the false
    alarm frames of all drives together."""
    rise, clear, false = [], [], 0
    for scores, in_view in drives:
        records = [FrameRecord(index=i, stamp_ns=0, height=0, width=0, published=0.0,
                               score=float(s), threshold=ood.frame_threshold, alarm=bool(a))
                   for i, (s, a) in enumerate(zip(scores, alarm_states(scores, ood), strict=True))]
        anomaly = summarize(records, list(in_view), ood.raise_after)["anomaly"]
        rise.append(anomaly["rise_delay_frames"])
        clear.append(anomaly["clear_delay_frames"])
        false += anomaly["false_alarm_frames"]
    return {"rise": rise, "clear": clear, "false": false}


def _listed(values: list[int | None]) -> str:
    return ", ".join("never" if v is None else str(v) for v in values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=bundled_model())
    parser.add_argument("--out", type=Path, required=True, help="Markdown report")
    parser.add_argument("--drives", type=int, default=12)
    parser.add_argument("--free-drives", type=int, default=30)
    parser.add_argument("--raise-after", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--also", type=float, nargs=2, action="append", default=[],
                        metavar=("PIXEL", "FRAME"), help="another threshold pair to compare")
    args = parser.parse_args()

    calibrated = OodConfig.from_calibration(load_manifest(args.model).get("ood"))
    pairs = [(calibrated.pixel_threshold, calibrated.frame_threshold, "manifest")]
    pairs += [(pixel, frame, "given") for pixel, frame in args.also]
    pixels = [pixel for pixel, _, _ in pairs]
    start = time.perf_counter()
    with OnnxRuntimePredictor(args.model) as predictor:
        drives = [drive_scores(predictor, seed, pixels)
                  for seed in tqdm(range(args.drives), desc="anomaly drives", unit="drive")]
        free = []  # the stretches before the object enters and after it left, replayed apart
        for k in tqdm(range(args.free_drives), desc="anomaly-free", unit="drive"):
            scores, in_view = drive_scores(predictor, FREE_SEED + k, pixels)
            seen = np.flatnonzero(in_view)
            free += [scores[:, :seen[0]], scores[:, seen[-1] + 1:]]
    wall = time.perf_counter() - start
    free_frames = sum(s.shape[1] for s in free)
    lines = [
        "### OOD alarm on synthetic drives (`benchmarks/ood_alarm_drives.py`)", "",
        f"- command: `python benchmarks/ood_alarm_drives.py {' '.join(sys.argv[1:])}`",
        f"- machine: {platform.machine()}, Python {platform.python_version()}, ONNX Runtime "
        f"CPU; {wall:.0f} s for all rows (same frames)",
        f"- model: `{args.model.name}`; clear_after {DEFAULT_CLEAR_AFTER}",
        f"- anomaly drives: seeds 0-{args.drives - 1} (object visible from frame 24); "
        f"anomaly-free: {free_frames} frames of seeds {FREE_SEED}-"
        f"{FREE_SEED + args.free_drives - 1}", "",
        "| thresholds (pixel / frame) | anomaly-free frames over | raise_after | rise delay per "
        "drive (frames after entry) | median | <= 5 | clear delay per drive | false alarm "
        "frames | anomaly-free frames with alarm |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for index, (pixel, frame, source) in enumerate(pairs):
        over = sum(int((s[index] > frame).sum()) for s in free)
        for k in args.raise_after:
            ood = OodConfig(pixel, frame, k, DEFAULT_CLEAR_AFTER)
            rows = anomaly_rows([(scores[index], in_view) for scores, in_view in drives], ood)
            alarmed = sum(int(alarm_states(s[index], ood).sum()) for s in free)
            rises = [r for r in rows["rise"] if r is not None]
            lines.append(
                f"| {pixel:.4f} / {frame:.4f} ({source}) | {100 * over / free_frames:.2f} % | "
                f"{k} | {_listed(rows['rise'])} | {np.median(rises) if rises else 'n/a'} | "
                f"{sum(r <= 5 for r in rises)}/{len(rows['rise'])} | {_listed(rows['clear'])} | "
                f"{rows['false']} | {alarmed}/{free_frames} "
                f"({100 * alarmed / free_frames:.2f} %) |")
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
