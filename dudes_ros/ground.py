"""Anomaly regions in 3-D: ground-contact pixels back-projected through the camera.

Frames follow ROS's optical convention (REP 103): x right, y down, z forward, with pixel
centres at integer coordinates as in ``sensor_msgs/CameraInfo``'s K. A region's ground contact
is, per image column of the region, the lower edge (row + 0.5) of its bottom-most pixel: where
an object standing on the road meets it. A column whose lowest pixel is on the image's last row
has its contact out of view: its point lies at the nearest visible ground, farther than the
object.

Depth comes either from a flat-ground model (:class:`FlatGround`: the camera's height above a
level road and its pitch) or from a depth image registered to the camera (:func:`depth_points`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dudes_ros.anomaly_regions import Region
from dudes_ros.config import check, key


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of an image ``width`` x ``height``: focal lengths and principal point
    in pixels. Distortion is ignored (rectified images, or mild lenses near the centre)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_camera_info(cls, info: Any) -> CameraIntrinsics:
        """From a ``sensor_msgs/CameraInfo``-like object (``k`` row-major 3x3, ``width``,
        ``height``); use :func:`camera_info_problem` first to get a readable refusal."""
        k = [float(v) for v in info.k]
        return cls(k[0], k[4], k[2], k[5], int(info.width), int(info.height))

    def problem(self) -> str | None:
        """Why these intrinsics cannot project, or None."""
        if self.width <= 0 or self.height <= 0:
            return f"image size {self.width}x{self.height} is empty"
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in values):
            return f"K has a non-finite entry (fx {self.fx}, fy {self.fy}, cx {self.cx}, " \
                   f"cy {self.cy})"
        if self.fx <= 0 or self.fy <= 0:
            return f"focal length is not positive (fx {self.fx}, fy {self.fy}): uncalibrated?"
        return None

    def resized(self, height: int, width: int) -> CameraIntrinsics:
        """The same camera seen at ``height`` x ``width`` (an image scaled as a whole, e.g. by
        ``output_scale``); pixel centres map onto pixel centres."""
        sx, sy = width / self.width, height / self.height
        return CameraIntrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5,
                                (self.cy + 0.5) * sy - 0.5, width, height)


def camera_info_problem(camera: str, info: Any | None,
                        image_size: tuple[int, int]) -> str | None:
    """A sentence naming ``camera`` and what is wrong with its camera_info for an image of
    ``image_size`` = (H, W), or None when points can be projected with it."""
    if info is None:
        return f"camera {camera}: no camera_info received; cannot place anomalies in 3-D"
    height, width = image_size
    if (int(info.width), int(info.height)) != (width, height):
        return (f"camera {camera}: camera_info is {int(info.width)}x{int(info.height)} but the "
                f"image is {width}x{height}; expected the same size")
    if len(info.k) != 9:
        return f"camera {camera}: camera_info K has {len(info.k)} entries; expected 9"
    problem = CameraIntrinsics.from_camera_info(info).problem()
    return None if problem is None else f"camera {camera}: camera_info {problem}"


@dataclass(frozen=True)
class FlatGround:
    """A level road ``height_m`` below the camera's optical centre, the camera pitched down by
    ``pitch_rad`` (negative: up) about its x axis; contact points farther than
    ``max_range_m`` (forward distance) are dropped (near the horizon a pixel spans metres).
    The node's parameters ground.height, ground.pitch and ground.max_range."""

    height_m: float = field(metadata=key("height"))
    pitch_rad: float = field(default=0.0, metadata=key("pitch"))
    max_range_m: float = field(default=60.0, metadata=key("max_range"))

    def __post_init__(self) -> None:
        check(_finite(self.height_m) and self.height_m > 0.0, "ground.height", self.height_m,
              "a finite height of the camera above the road in metres > 0")
        check(_finite(self.pitch_rad) and abs(self.pitch_rad) < math.pi / 2, "ground.pitch",
              self.pitch_rad, "a finite pitch in radians with |pitch| < pi/2 (the camera must "
              "see the horizon's side of the road)")
        check(_finite(self.max_range_m) and self.max_range_m > 0.0, "ground.max_range",
              self.max_range_m, "a finite distance in metres > 0")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def rays(intrinsics: CameraIntrinsics, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rays float64 [N, 3] with z = 1 through image points ``u`` (columns) and ``v`` (rows),
    float [N] in pixel coordinates."""
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    return np.stack([(u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy,
                     np.ones_like(u)], -1)


def project_to_ground(intrinsics: CameraIntrinsics, ground: FlatGround, u: np.ndarray,
                      v: np.ndarray) -> np.ndarray:
    """Points float32 [M, 3] in the optical frame where the rays through (``u``, ``v``) meet
    the ground, M <= N: points at or above the horizon, or beyond ``max_range_m``, are
    dropped."""
    r = rays(intrinsics, u, v)
    # The level frame's down axis, written in the optical frame, is (0, cos p, sin p): the
    # ground is where a point's component along it equals the camera height.
    down = r[:, 1] * math.cos(ground.pitch_rad) + r[:, 2] * math.sin(ground.pitch_rad)
    ok = down > 1e-9
    points = r[ok] * (ground.height_m / down[ok])[:, None]
    forward = points[:, 1] * -math.sin(ground.pitch_rad) + points[:, 2] * math.cos(
        ground.pitch_rad)
    return points[forward <= ground.max_range_m].astype(np.float32)


def contact_pixels(region: Region, components: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ground-contact image points of ``region``: per column of its box that holds any of its
    pixels in ``components`` int32 [H, W], ``(u, v)`` float64 [K] with v the lower edge of the
    bottom-most pixel (row + 0.5)."""
    x0, y0, x1, y1 = region.box
    inside = components[y0:y1, x0:x1] == region.label
    columns = np.flatnonzero(inside.any(axis=0))
    # argmax on the flipped rows finds the last True of each column
    bottom = inside.shape[0] - 1 - np.argmax(inside[::-1, columns], axis=0)
    return (columns + x0).astype(np.float64), (bottom + y0).astype(np.float64) + 0.5


def ground_points(region: Region, components: np.ndarray, intrinsics: CameraIntrinsics,
                  ground: FlatGround) -> np.ndarray:
    """Float32 [N, 3] optical-frame points of ``region``'s ground contact on ``ground``;
    ``components`` int32 [H, W] is ``Regions.components`` at the intrinsics' size."""
    _check_matches_intrinsics(components, intrinsics)
    u, v = contact_pixels(region, components)
    return project_to_ground(intrinsics, ground, u, v)


def depth_points(region: Region, components: np.ndarray, intrinsics: CameraIntrinsics,
                 depth: np.ndarray, max_range_m: float = 60.0) -> np.ndarray:
    """Float32 [N, 3] optical-frame points of ``region``'s ground contact from a registered
    ``depth`` image [H, W] (uint16 millimetres, as 16UC1, or float32 metres, as 32FC1) at the
    intrinsics' size; the contact row is the bottom-most pixel itself. Pixels without depth (0,
    NaN, inf) or farther than ``max_range_m`` give no point."""
    _check_matches_intrinsics(components, intrinsics)
    if depth.shape != components.shape:
        raise ValueError(f"depth image is {depth.shape[1]}x{depth.shape[0]} but the regions are "
                         f"{components.shape[1]}x{components.shape[0]}; expected the same size")
    if depth.dtype == np.uint16:
        scale = 1e-3
    elif depth.dtype == np.float32:
        scale = 1.0
    else:
        raise ValueError(f"depth must be uint16 millimetres or float32 metres, got {depth.dtype}")
    u, v = contact_pixels(region, components)
    rows, cols = (v - 0.5).astype(np.intp), u.astype(np.intp)
    z = depth[rows, cols].astype(np.float64) * scale
    ok = np.isfinite(z) & (z > 0) & (z <= max_range_m)
    return (rays(intrinsics, u[ok], rows[ok]) * z[ok, None]).astype(np.float32)


def _check_matches_intrinsics(components: np.ndarray, intrinsics: CameraIntrinsics) -> None:
    if components.shape != (intrinsics.height, intrinsics.width):
        raise ValueError(f"regions are {components.shape[1]}x{components.shape[0]} but the "
                         f"intrinsics are for {intrinsics.width}x{intrinsics.height}; resize "
                         "the intrinsics (CameraIntrinsics.resized) to the mask's size")
