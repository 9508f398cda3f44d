"""Where the anomalies are, per camera frame: tracked regions and their ground contact in 3-D.

``AnomalyLocator`` is what the node and ``dudes process-bag`` both run on a frame's uncertainty
map, so that the two publish the same regions: ``anomaly_regions.find_regions`` at the frame's
pixel threshold, ids kept across frames by one ``RegionTracker`` per camera, then each region's
ground-contact points (``ground``) from the camera's intrinsics and either a flat-ground model
or a registered depth image. Regions are found on the map as published (after
``output_scale``), so their boxes are in the pixels of ``ood/mask`` and ``segmentation``; the
intrinsics are scaled to that size.

A map larger than ``WORK_PIXELS`` is first area-averaged down to that many pixels, and the mask
and boxes found there are scaled back up: u is the network's output upsampled (the bundled
student sees 128x256), so a finer map holds no more detail, and finding regions costs in
proportion to the pixels (BENCHMARKS.md, node cost at full resolution).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from dudes_ros.anomaly_regions import Region, RegionConfig, Regions, RegionTracker, find_regions
from dudes_ros.ground import (
    CameraIntrinsics,
    FlatGround,
    camera_info_problem,
    depth_points,
    ground_points,
)

WORK_PIXELS = 512 * 1024  # largest map regions are searched on (see above)


@dataclass(frozen=True)
class Geometry:
    """What places a camera's regions in 3-D: its ``intrinsics`` at the input image's size and
    either a ``depth`` image registered to it (uint16 mm or float32 m [H, W], any size: it is
    resized to the regions' size by nearest neighbour) or a ``ground`` plane. ``depth`` wins
    when both are given; with neither there are no points."""

    intrinsics: CameraIntrinsics
    ground: FlatGround | None = None
    depth: np.ndarray | None = None


def camera_geometry(camera: str, info: Any | None, image_size: tuple[int, int],
                    ground: FlatGround | None,
                    depth: np.ndarray | None = None) -> tuple[Geometry | None, str | None]:
    """``(geometry, problem)`` of a frame of ``image_size`` = (H, W) from the camera's latest
    ``sensor_msgs/CameraInfo`` ``info`` (None: none received): ``(None, None)`` when neither a
    ``ground`` nor a ``depth`` image asks for points, ``(None, sentence naming the camera and
    what is wrong)`` when the camera_info cannot project."""
    if ground is None and depth is None:
        return None, None
    problem = camera_info_problem(camera, info, image_size)
    if problem is not None:
        return None, problem
    return Geometry(CameraIntrinsics.from_camera_info(info), ground, depth), None


@dataclass(frozen=True)
class Located:
    """One camera frame's anomalies on its map [h, w]: ``mask`` uint8 [h, w] (255 = anomalous),
    the ``regions`` with their tracked ids, largest first (boxes and areas in mask pixels;
    ``mean_u`` and ``max_u`` of the map regions were found on) and ``points`` float32 [N, 3] in
    the camera's optical frame (metres), or None when the frame has no geometry."""

    mask: np.ndarray
    regions: list[Region]
    points: np.ndarray | None


class AnomalyLocator:
    """Regions and points per camera. Not thread-safe: one caller at a time (the node's worker,
    the bag loop)."""

    def __init__(self, config: RegionConfig | None = None) -> None:
        self._config = config or RegionConfig()
        self._trackers: dict[str, RegionTracker] = {}

    @property
    def config(self) -> RegionConfig:
        return self._config

    def set_config(self, config: RegionConfig) -> None:
        """Use ``config`` from the next frame on; tracks and ids are kept."""
        self._config = config
        for tracker in self._trackers.values():
            tracker.config = config

    def reset(self) -> None:
        """Forget every camera's tracks (the node was deactivated); ids keep counting up."""
        for tracker in self._trackers.values():
            tracker.reset()

    def locate(self, camera: str, uncertainty: np.ndarray, pixel_threshold: float,
               geometry: Geometry | None = None) -> Located:
        """Regions of float32 u [h, w] over ``pixel_threshold`` with ids tracked for
        ``camera``, and their ground-contact points when ``geometry`` is given."""
        tracker = self._trackers.setdefault(camera, RegionTracker(self._config))
        found = find_regions(working_map(uncertainty), pixel_threshold, self._config)
        found = found._replace(regions=tracker.update(found.regions))
        points = None if geometry is None else self._points(found, geometry)
        return Located(*_scaled_up(found, uncertainty.shape), points)

    @staticmethod
    def _points(found: Regions, geometry: Geometry) -> np.ndarray | None:
        height, width = found.components.shape
        intrinsics = geometry.intrinsics.resized(height, width)
        if geometry.depth is not None:
            depth = geometry.depth
            if depth.shape != (height, width):
                depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST)
            parts = [depth_points(r, found.components, intrinsics, depth) for r in found.regions]
        elif geometry.ground is not None:
            parts = [ground_points(r, found.components, intrinsics, geometry.ground)
                     for r in found.regions]
        else:
            return None
        return np.concatenate(parts) if parts else np.zeros((0, 3), np.float32)


def working_map(uncertainty: np.ndarray) -> np.ndarray:
    """float32 u [h, w] as is, or area-averaged to at most ``WORK_PIXELS`` (aspect kept)."""
    height, width = uncertainty.shape
    scale = math.sqrt(WORK_PIXELS / (height * width))
    if scale >= 1.0:
        return uncertainty
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(uncertainty, size, interpolation=cv2.INTER_AREA)


def _scaled_up(found: Regions, shape: tuple[int, int]) -> tuple[np.ndarray, list[Region]]:
    """``found``'s mask and regions at ``shape`` = (h, w), the size of the map it was found
    on before ``working_map``: the mask by nearest neighbour, and each box to exactly the
    pixels that mask gives it."""
    if found.mask.shape == tuple(shape):
        return found.mask, found.regions
    height, width = shape
    small_h, small_w = found.mask.shape
    mask = cv2.resize(found.mask, (width, height), interpolation=cv2.INTER_NEAREST)
    # OpenCV's nearest neighbour reads source pixel floor(i * small / big) for pixel i; a box
    # [a, b) of the small map covers the big pixels whose source lies in it.
    rows = np.floor(np.arange(height) * (small_h / height)).astype(np.int64)
    cols = np.floor(np.arange(width) * (small_w / width)).astype(np.int64)
    area_scale = height * width / (small_h * small_w)
    regions = []
    for r in found.regions:
        x0, x1 = np.searchsorted(cols, [r.x, r.x + r.width])
        y0, y1 = np.searchsorted(rows, [r.y, r.y + r.height])
        regions.append(replace(r, x=int(x0), y=int(y0), width=int(x1 - x0),
                               height=int(y1 - y0), area=round(r.area * area_scale)))
    return mask, regions
