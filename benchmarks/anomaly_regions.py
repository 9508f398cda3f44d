"""Anomaly regions and their ground points against the synthetic drives' truth.

    python benchmarks/anomaly_regions.py --out /tmp/anomaly_regions.md [--drives 12] \
        [--far-drives 6] [--model engines/...onnx] [--openings 3 5] \
        [--min-areas 0.001 0.002 0.004] [--grows 1 0.75 0.5 0.35]

The demo's drives (``demo.sources.synthetic_drive``'s settings: 256x512, 72 frames, a held-out
photo slides onto the road at frame 24 and leaves at 48), seeds 0..N-1, rendered with their
truth (``data.synthetic.render_drive``: the anomaly's pixels, and where it stands in metres).
The demo's drives let the object enter at least 1/6 of the image tall, i.e. within about 20 m;
``--far-drives`` more (seeds 1000..) let it enter 10 px tall, from farther away, so that the
distance error has frames out to 30 m and beyond.
Each frame goes through the deploy graph (ONNX Runtime, CPU) once; every (opening, min_area,
grow) setting then finds and tracks regions (``anomaly_regions``) at the manifest's pixel threshold
from the same u maps, and is scored on:

- **recall**: an anomaly counts as found when, within ``raise_after`` frames after the one it
  enters on (frames e .. e + raise_after), a region's box has IoU >= 0.5 with the box of its
  visible pixels; also how many are found by ``raise_after`` frames after the frame alarm
  rises (``ood.Hysteresis`` at the manifest's thresholds: when a planner is told something is
  there, does it know where), how many at all while in view, and the share of anomaly frames
  with such a region;
- **false regions per anomaly-free frame**: every region on a frame with no anomaly pixel
  (frames 0-23 and 48-71);
- **distance error**: on anomaly frames, the region with the best box IoU (>= 0.5) is projected
  onto the flat ground (``ground.ground_points``, the renderer's level camera: focal, horizon
  row, height); its nearest contact point's forward distance against the rendered distance
  of the sprite, |error| / distance, binned by distance; frames where the object reaches the
  image's bottom row are left out (its ground contact is out of view). The same with the
  truth mask as the
  region ("truth mask" row) separates the geometry's own error from the mask's.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dudes_ros.anomaly_regions import (  # noqa: E402
    Region,
    RegionConfig,
    RegionTracker,
    box_iou,
    find_regions,
)
from dudes_ros.data.synthetic import render_drive  # noqa: E402
from dudes_ros.demo.sources import ENTRY_HEIGHT  # noqa: E402
from dudes_ros.files import atomic_write_bytes  # noqa: E402
from dudes_ros.ground import CameraIntrinsics, FlatGround, ground_points  # noqa: E402
from dudes_ros.inference.onnxruntime_backend import OnnxRuntimePredictor  # noqa: E402
from dudes_ros.ood import (  # noqa: E402
    DEFAULT_CLEAR_AFTER,
    DEFAULT_RAISE_AFTER,
    Hysteresis,
    uncertain_fraction,
)
from dudes_ros.perception import OodConfig  # noqa: E402
from dudes_ros.resources import bundled_model  # noqa: E402
from dudes_ros.runtime.manifest import load_manifest  # noqa: E402

SIZE = (256, 512)
FRAMES, ENTER, LEAVE = 72, 24, 48
BINS = (0.0, 10.0, 20.0, 30.0, np.inf)
FOUND_IOU = 0.5
FAR_SEED, FAR_ENTRY_HEIGHT = 1000, 10


@dataclass
class Drive:
    """One drive's model output and truth: u float32 [F, H, W], truth mask bool [F, H, W],
    the sprite's distance per frame (m) and the level camera's intrinsics and ground."""

    u: np.ndarray
    truth: np.ndarray
    distance: np.ndarray
    intrinsics: CameraIntrinsics
    ground: FlatGround
    alarm: np.ndarray  # bool [F], the debounced frame alarm
    far: bool = False


@dataclass
class Score:
    found: int = 0
    found_alarm: int = 0
    found_ever: int = 0
    anomaly_frames: int = 0
    matched_frames: int = 0
    anomalies: int = 0
    false_regions: int = 0
    free_frames: int = 0
    first_found: list[int] = field(default_factory=list)
    errors: list[tuple[float, float]] = field(default_factory=list)  # (distance, |err| / d)
    ids_per_anomaly: list[int] = field(default_factory=list)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def render(predictor: OnnxRuntimePredictor, seed: int, ood: OodConfig,
           far: bool = False) -> Drive:
    entry = FAR_ENTRY_HEIGHT if far else round(SIZE[0] * ENTRY_HEIGHT)
    scenes, truth = render_drive(seed, SIZE, FRAMES, ENTER, LEAVE, "held-out-photo",
                                 entry_height=entry)
    u = np.stack([predictor.predict(np.ascontiguousarray(s.image)[None])[1][0] for s in scenes])
    hysteresis = Hysteresis(ood.frame_threshold, ood.raise_after, DEFAULT_CLEAR_AFTER)
    alarm = np.array([hysteresis.update(uncertain_fraction(m, ood.pixel_threshold)) for m in u])
    f, cx, cy = truth.camera.intrinsics(SIZE)
    intrinsics = CameraIntrinsics(f, f, cx, cy, SIZE[1], SIZE[0])
    return Drive(u, np.stack([s.anomaly_mask for s in scenes]), np.array(truth.distance),
                 intrinsics, FlatGround(truth.camera.height, 0.0, 1000.0), alarm, far)


def nearest_distance(region: Region, components: np.ndarray, drive: Drive) -> float | None:
    points = ground_points(region, components, drive.intrinsics, drive.ground)
    return float(points[:, 2].min()) if len(points) else None


def score(drives: list[Drive], pixel_threshold: float, config: RegionConfig,
          raise_after: int) -> Score:
    out = Score()
    for drive in drives:
        tracker = RegionTracker(config)
        visible = np.flatnonzero(drive.truth.any(axis=(1, 2)))
        enter = int(visible[0])
        out.anomalies += int(not drive.far)
        first = None
        matched = []
        ids: set[int] = set()
        for k in range(len(drive.u)):
            found = find_regions(drive.u[k], pixel_threshold, config)
            regions = tracker.update(found.regions)
            if not drive.truth[k].any():
                out.free_frames += 1
                out.false_regions += len(regions)
                continue
            out.anomaly_frames += int(not drive.far)
            truth_box = mask_box(drive.truth[k])
            best = max(regions, key=lambda r: box_iou(r.box, truth_box), default=None)
            if best is None or box_iou(best.box, truth_box) < FOUND_IOU:
                continue
            out.matched_frames += int(not drive.far)
            matched.append(k)
            ids.add(best.id)
            first = k if first is None else first
            estimate = nearest_distance(best, found.components, drive)
            if estimate is not None and not drive.truth[k][-1].any():
                d = float(drive.distance[k])
                out.errors.append((d, abs(estimate - d) / d))
        if drive.far:  # recall is the demo drives' (the issue's) measure
            continue
        if first is not None:
            out.first_found.append(first - enter)
            out.found += int(first - enter <= raise_after)
            rises = np.flatnonzero(drive.alarm[enter:])
            if rises.size:
                rise = enter + int(rises[0])
                out.found_alarm += int(any(rise <= m <= rise + raise_after for m in matched))
            out.found_ever += 1
        out.ids_per_anomaly.append(len(ids))
    return out


def truth_errors(drives: list[Drive]) -> list[tuple[float, float]]:
    """Distance errors with each frame's truth mask as the region (geometry alone)."""
    errors = []
    for drive in drives:
        for k in np.flatnonzero(drive.truth.any(axis=(1, 2))):
            if drive.truth[k][-1].any():
                continue
            components = drive.truth[k].astype(np.int32)
            x0, y0, x1, y1 = mask_box(drive.truth[k])
            region = Region(x0, y0, x1 - x0, y1 - y0, int(components.sum()), 0.0, 0.0, 1)
            estimate = nearest_distance(region, components, drive)
            if estimate is not None:
                d = float(drive.distance[k])
                errors.append((d, abs(estimate - d) / d))
    return errors


def error_cells(errors: list[tuple[float, float]]) -> list[str]:
    """Per distance bin: 'median / p90 (n)' of |error| / distance, in %."""
    cells = []
    values = np.array(errors).reshape(-1, 2)
    for lo, hi in zip(BINS[:-1], BINS[1:], strict=True):
        e = values[(values[:, 0] >= lo) & (values[:, 0] < hi), 1]
        cells.append(f"{100 * np.median(e):.1f} / {100 * np.quantile(e, 0.9):.1f} ({len(e)})"
                     if len(e) else "-")
    return cells


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=bundled_model())
    parser.add_argument("--out", type=Path, required=True, help="Markdown report")
    parser.add_argument("--drives", type=int, default=12)
    parser.add_argument("--far-drives", type=int, default=6)
    parser.add_argument("--openings", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--min-areas", type=float, nargs="+", default=[0.001, 0.002, 0.004])
    parser.add_argument("--grows", type=float, nargs="+", default=[1.0, 0.75, 0.5, 0.35])
    parser.add_argument("--seed-scales", type=float, nargs="+", default=[1.0],
                        help="regions seeded at this x the pixel threshold (1 = the alarm's)")
    parser.add_argument("--raise-after", type=int, default=DEFAULT_RAISE_AFTER)
    args = parser.parse_args()

    ood = OodConfig.from_calibration(load_manifest(args.model).get("ood"))
    ood = OodConfig(ood.pixel_threshold, ood.frame_threshold, args.raise_after,
                    DEFAULT_CLEAR_AFTER)
    start = time.perf_counter()
    with OnnxRuntimePredictor(args.model, device="cpu") as predictor:
        drives = [render(predictor, seed, ood)
                  for seed in tqdm(range(args.drives), desc="drives", unit="drive")]
        drives += [render(predictor, FAR_SEED + seed, ood, far=True)
                   for seed in tqdm(range(args.far_drives), desc="far drives", unit="drive")]
    rendered = time.perf_counter() - start
    bins = [f"{lo:g}-{hi:g} m" for lo, hi in zip(BINS[:-2], BINS[1:-1], strict=True)]
    bins.append(f">= {BINS[-2]:g} m")
    lines = [
        "### Anomaly regions on synthetic drives (`benchmarks/anomaly_regions.py`)", "",
        f"- command: `python benchmarks/anomaly_regions.py {' '.join(sys.argv[1:])}`",
        f"- machine: {platform.machine()}, Python {platform.python_version()}, ONNX Runtime "
        f"CPU; {rendered:.0f} s to render and infer, then every setting on the same u maps",
        f"- model: `{args.model.name}`, pixel threshold {ood.pixel_threshold:.4f} (manifest); "
        f"drives: seeds 0-{args.drives - 1}, {SIZE[0]}x{SIZE[1]}, {FRAMES} frames, anomaly "
        f"from frame {ENTER} to {LEAVE - 1}; found = box IoU >= {FOUND_IOU} within "
        f"raise_after = {args.raise_after} frames of entering; far drives (distance error "
        f"and false regions only): seeds {FAR_SEED}-{FAR_SEED + args.far_drives - 1}, "
        f"entering {FAR_ENTRY_HEIGHT} px tall",
        "- distance error: |nearest ground-contact point's forward distance - rendered "
        "distance| / distance, median / 90th percentile in % (frames), best-IoU region per "
        "anomaly frame", "",
        "| seed | opening | min_area | grow | found (within raise_after of entering) | found "
        "(within raise_after of the alarm) | found while in view | frames "
        "entering to first IoU >= 0.5 (median) | anomaly frames with IoU >= 0.5 | false "
        "regions per anomaly-free frame | ids per anomaly (max) | " + " | ".join(bins) + " |",
        "|---|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(bins),
    ]
    for seed, opening, min_area, grow in itertools.product(args.seed_scales, args.openings,
                                                           args.min_areas, args.grows):
        config = RegionConfig(min_area=min_area, opening=opening, grow=grow)
        s = score(drives, seed * ood.pixel_threshold, config, args.raise_after)
        first = f"{np.median(s.first_found):g}" if s.first_found else "-"
        lines.append(
            f"| {seed:g} | {opening} | {min_area:g} | {grow:g} | {s.found}/{s.anomalies} | "
            f"{s.found_alarm}/{s.anomalies} | {s.found_ever}/{s.anomalies} | {first} | "
            f"{100 * s.matched_frames / max(1, s.anomaly_frames):.0f} % | "
            f"{s.false_regions / max(1, s.free_frames):.3f} ({s.false_regions}/"
            f"{s.free_frames}) | {max(s.ids_per_anomaly)} | "
            + " | ".join(error_cells(s.errors)) + " |")
    lines.append("| truth mask | - | - | - | - | - | - | - | - | - | - | "
                 + " | ".join(error_cells(truth_errors(drives))) + " |")
    lines.append("")
    lines.append(f"{time.perf_counter() - start:.0f} s in all.")
    text = "\n".join(lines) + "\n"
    atomic_write_bytes(args.out, text.encode())  # no half-written report
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
