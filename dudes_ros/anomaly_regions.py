"""Where the anomalies are: connected regions of uncertain pixels, tracked across frames.

Per frame, pixels with u over the pixel threshold form a mask; a morphological opening removes
specks and one-pixel bridges. Optionally each region then grows into the connected pixels over
a lower threshold (hysteresis, as in Canny's edge linking): the calibrated threshold keeps
only an object's core, so its box and ground contact would otherwise shrink. OpenCV's
``connectedComponentsWithStats`` (8-connectivity) labels the result; components smaller than
a minimum area (after growth) are dropped. A :class:`RegionTracker` then gives each region an
id that stays the same while the region persists, by greedy box-IoU matching against the
previous frame; ids are never reused.

OpenCV does the pixel work (morphology and component labelling are its long-maintained,
optimised core routines); this module only chooses the parameters and keeps the ids.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import NamedTuple

import cv2
import numpy as np

from dudes_ros.config import check

DEFAULT_MIN_AREA = 0.002
"""Smallest region as a fraction of the image area (chosen by benchmarks/anomaly_regions.py)."""
DEFAULT_OPENING = 5
"""Side of the opening's elliptical kernel in mask pixels (chosen by the same benchmark)."""
DEFAULT_GROW = 0.75
"""Fraction of the pixel threshold regions grow down to (1 = no growth; chosen by the same
benchmark)."""
DEFAULT_TRACK_IOU = 0.3
DEFAULT_MAX_MISSED = 1


@dataclass(frozen=True)
class RegionConfig:
    """``min_area``: smallest region, fraction of the image area in [0, 1); ``opening``: odd
    side in pixels of the elliptical opening kernel (1 = no opening); ``grow``: regions extend
    over connected pixels with u above ``grow`` x the pixel threshold, in (0, 1] (1 = no
    growth); ``track_iou``: the box IoU in (0, 1] a region needs with a region of the previous
    frame to keep its id; ``max_missed``: frames a track may go unseen before its id is retired
    (>= 0)."""

    min_area: float = DEFAULT_MIN_AREA
    opening: int = DEFAULT_OPENING
    grow: float = DEFAULT_GROW
    track_iou: float = DEFAULT_TRACK_IOU
    max_missed: int = DEFAULT_MAX_MISSED

    def __post_init__(self) -> None:
        check(isinstance(self.min_area, (int, float)) and 0.0 <= self.min_area < 1.0,
              "regions.min_area", self.min_area, "a fraction of the image area in [0, 1)")
        check(isinstance(self.opening, int) and self.opening >= 1 and self.opening % 2 == 1,
              "regions.opening", self.opening, "an odd kernel side in pixels >= 1 (1 = none)")
        check(isinstance(self.grow, (int, float)) and 0.0 < self.grow <= 1.0, "regions.grow",
              self.grow, "a fraction of the pixel threshold in (0, 1] (1 = no growth)")
        check(isinstance(self.track_iou, (int, float)) and 0.0 < self.track_iou <= 1.0,
              "regions.track_iou", self.track_iou, "a box IoU in (0, 1]")
        check(isinstance(self.max_missed, int) and self.max_missed >= 0, "regions.max_missed",
              self.max_missed, "an integer >= 0")


@dataclass(frozen=True)
class Region:
    """One anomaly region: pixel box ``x, y`` (top-left), ``width, height``; ``area`` in
    pixels; mean and max u over its pixels; ``label``: its value in the frame's component map;
    ``id``: the tracker's id (-1 before tracking)."""

    x: int
    y: int
    width: int
    height: int
    area: int
    mean_u: float
    max_u: float
    label: int
    id: int = -1

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` with exclusive x1, y1."""
        return self.x, self.y, self.x + self.width, self.y + self.height


class Regions(NamedTuple):
    """One frame's result: ``mask`` uint8 [H, W] (255 = anomalous pixel, after cleaning and
    the area filter), ``components`` int32 [H, W] (``Region.label`` on each region's pixels, 0
    elsewhere) and the regions, largest first."""

    mask: np.ndarray
    components: np.ndarray
    regions: list[Region]


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """IoU of two ``(x0, y0, x1, y1)`` boxes (exclusive ends)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def find_regions(uncertainty: np.ndarray, pixel_threshold: float,
                 config: RegionConfig = RegionConfig()) -> Regions:
    """Regions of float32 u [H, W] over ``pixel_threshold`` (see :class:`Regions`)."""
    u = np.asarray(uncertainty, dtype=np.float32)
    if u.ndim != 2:
        raise ValueError(f"uncertainty must be [H, W], got shape {u.shape}")
    raw = (u > pixel_threshold).astype(np.uint8)
    if config.opening > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (config.opening, config.opening))
        raw = cv2.morphologyEx(raw, cv2.MORPH_OPEN, kernel)
    seeded = None
    if config.grow < 1.0:
        seeds = raw.astype(bool)
        raw = ((u > config.grow * pixel_threshold) | seeds).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(raw, connectivity=8,
                                                               ltype=cv2.CV_32S)
    if config.grow < 1.0:
        seeded = np.zeros(count, dtype=bool)
        seeded[labels[seeds]] = True
    min_pixels = config.min_area * u.size
    keep = np.zeros(count, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= max(1.0, min_pixels)
    if seeded is not None:
        keep &= seeded
    kept = np.flatnonzero(keep)
    components = np.where(keep[labels], labels, 0).astype(np.int32)
    regions = []
    for label in kept:
        x, y, w, h, area = (int(v) for v in stats[label, :5])
        values = u[y:y + h, x:x + w][labels[y:y + h, x:x + w] == label]
        regions.append(Region(x, y, w, h, area, float(values.mean(dtype=np.float64)),
                              float(values.max()), int(label)))
    regions.sort(key=lambda r: -r.area)
    mask = np.where(components > 0, np.uint8(255), np.uint8(0))
    return Regions(mask, components, regions)


class RegionTracker:
    """Stable ids across frames: each region takes the id of the unmatched track whose last box
    overlaps it most (box IoU >= ``config.track_iou``, best pairs first); others get new ids.
    A track unseen for more than ``config.max_missed`` frames is retired; ids are never
    reused. One tracker per camera."""

    def __init__(self, config: RegionConfig = RegionConfig()) -> None:
        self.config = config
        self._ids = itertools.count(1)
        self._tracks: dict[int, tuple[tuple[int, int, int, int], int]] = {}  # id -> box, missed

    def update(self, regions: list[Region]) -> list[Region]:
        """``regions`` of the next frame with their ids set, in the same order."""
        pairs = sorted(((box_iou(box, r.box), track, i)
                        for track, (box, _) in self._tracks.items()
                        for i, r in enumerate(regions)), reverse=True)
        assigned: dict[int, int] = {}
        taken: set[int] = set()
        for iou, track, i in pairs:
            if iou < self.config.track_iou:
                break
            if track in taken or i in assigned:
                continue
            assigned[i] = track
            taken.add(track)
        out = []
        tracks: dict[int, tuple[tuple[int, int, int, int], int]] = {}
        for i, region in enumerate(regions):
            track = assigned[i] if i in assigned else next(self._ids)
            tracks[track] = (region.box, 0)
            out.append(replace(region, id=track))
        for track, (box, missed) in self._tracks.items():
            if track not in taken and missed < self.config.max_missed:
                tracks[track] = (box, missed + 1)
        self._tracks = tracks
        return out

    def reset(self) -> None:
        """Forget all tracks (a camera restarted); ids keep counting up."""
        self._tracks = {}


def paint_class(labels: np.ndarray, mask: np.ndarray, class_id: int) -> np.ndarray:
    """A copy of uint8 ``labels`` [H, W] with ``class_id`` where ``mask`` [H, W] is non-zero:
    anomalous pixels as their own class in ``segmentation``, for nav2's
    semantic_segmentation_layer (which costs classes by id)."""
    if labels.shape != mask.shape:
        raise ValueError(f"labels {labels.shape} and mask {mask.shape} must have the same shape")
    if not 0 <= int(class_id) <= 255:
        raise ValueError(f"class_id must fit mono8 (0..255), got {class_id}")
    out = np.array(labels, dtype=np.uint8, copy=True)
    out[np.asarray(mask) > 0] = int(class_id)
    return out
