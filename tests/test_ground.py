"""``ground``: back-projection onto a flat road is exact on a synthetic pinhole of known height
and pitch; ground contact is the lower edge of each column's bottom-most pixel; depth images in
millimetres and metres; bad camera_info and impossible ground parameters are refused by name."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from dudes_ros.anomaly_regions import RegionConfig, find_regions
from dudes_ros.config import ConfigError
from dudes_ros.ground import (
    CameraIntrinsics,
    FlatGround,
    camera_info_problem,
    depth_points,
    ground_points,
    project_to_ground,
)

CAMERA = CameraIntrinsics(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=640, height=480)


def pixel_of(point_level: np.ndarray, pitch: float) -> tuple[np.ndarray, np.ndarray]:
    """Image point of a level-frame point (x right, y down, z forward, metres) seen by CAMERA
    pitched down by ``pitch``."""
    x, y, z = point_level
    c_y = y * math.cos(pitch) - z * math.sin(pitch)
    c_z = y * math.sin(pitch) + z * math.cos(pitch)
    return (np.array([CAMERA.cx + CAMERA.fx * x / c_z]),
            np.array([CAMERA.cy + CAMERA.fy * c_y / c_z]))


@pytest.mark.parametrize("pitch", [0.0, 0.08, -0.03])
@pytest.mark.parametrize("distance, lateral", [(4.0, -1.0), (10.0, 1.0), (30.0, 2.5)])
def test_a_ground_pixel_projects_to_its_point(pitch, distance, lateral):
    height = 1.5
    u, v = pixel_of(np.array([lateral, height, distance]), pitch)
    points = project_to_ground(CAMERA, FlatGround(height, pitch), u, v)
    # back in the level frame, the point lies on the road where it was put
    x, c_y, c_z = points[0].astype(np.float64)
    level = (x, c_y * math.cos(pitch) + c_z * math.sin(pitch),
             -c_y * math.sin(pitch) + c_z * math.cos(pitch))
    assert points.dtype == np.float32 and points.shape == (1, 3)
    assert level == pytest.approx((lateral, height, distance), abs=1e-3)


def test_level_camera_point_in_the_optical_frame():
    # 75 px below the principal point at f = 500 and 1.5 m height: 10 m ahead, 1.5 m down
    points = project_to_ground(CAMERA, FlatGround(1.5), np.array([370.0]), np.array([315.0]))
    assert points[0] == pytest.approx((1.0, 1.5, 10.0), abs=1e-4)


def test_at_or_above_the_horizon_and_beyond_range_give_no_point():
    ground = FlatGround(1.5, 0.0, max_range_m=20.0)
    u = np.array([320.0, 320.0, 320.0, 320.0])
    v = np.array([100.0, 240.0, 270.0, 300.0])  # sky, horizon, 25 m, 12.5 m
    points = project_to_ground(CAMERA, ground, u, v)
    assert points[:, 2] == pytest.approx([12.5])


def test_ground_points_use_each_columns_lowest_pixel_edge():
    u = np.full((480, 640), 0.1, dtype=np.float32)
    u[250:315, 300:310] = 0.9  # a box whose lower edge (row 314 + 0.5) is the contact
    u[315:320, 305] = 0.9  # one column reaches lower
    found = find_regions(u, 0.5, RegionConfig(min_area=0.0, opening=1))
    points = ground_points(found.regions[0], found.components, CAMERA, FlatGround(1.5))
    assert points.shape == (10, 3)
    z = points[:, 2]
    assert z[5] == pytest.approx(500 * 1.5 / (319.5 - 240), rel=1e-6)
    assert np.delete(z, 5) == pytest.approx(np.full(9, 500 * 1.5 / (314.5 - 240)), rel=1e-6)
    assert points[:, 0] == pytest.approx((np.arange(300, 310) - 320) / 500 * z, rel=1e-5)
    assert points[:, 1] == pytest.approx(np.full(10, 1.5), rel=1e-6)


def test_ground_points_need_intrinsics_at_the_mask_size():
    found = find_regions(np.full((48, 64), 0.9, dtype=np.float32), 0.5)
    with pytest.raises(ValueError, match="64x48 but the intrinsics are for 640x480"):
        ground_points(found.regions[0], found.components, CAMERA, FlatGround(1.5))
    half = CAMERA.resized(240, 320)
    assert (half.fx, half.fy, half.cx, half.cy) == (250.0, 250.0, 159.75, 119.75)


@pytest.mark.parametrize("dtype, scale", [(np.uint16, 1000.0), (np.float32, 1.0)])
def test_depth_points_take_depth_at_the_contact_pixels(dtype, scale):
    u = np.full((480, 640), 0.1, dtype=np.float32)
    u[200:260, 100:104] = 0.9
    found = find_regions(u, 0.5, RegionConfig(min_area=0.0, opening=1))
    depth = np.zeros((480, 640), dtype=dtype)
    depth[259, 100:103] = np.array([4.0, 5.0, 6.0]) * scale  # column 103: no depth
    points = depth_points(found.regions[0], found.components, CAMERA, depth)
    assert points[:, 2] == pytest.approx([4.0, 5.0, 6.0])
    assert points[:, 0] == pytest.approx((np.arange(100, 103) - 320) / 500 * points[:, 2])
    assert points[:, 1] == pytest.approx((259 - 240) / 500 * points[:, 2])


def test_depth_points_refuse_other_sizes_and_types():
    found = find_regions(np.full((480, 640), 0.9, dtype=np.float32), 0.5)
    region, components = found.regions[0], found.components
    with pytest.raises(ValueError, match="depth image is 320x240"):
        depth_points(region, components, CAMERA, np.zeros((240, 320), np.uint16))
    with pytest.raises(ValueError, match="uint16 millimetres or float32 metres, got float64"):
        depth_points(region, components, CAMERA, np.zeros((480, 640)))


def info(width=640, height=480, k=(500.0, 0, 320.0, 0, 500.0, 240.0, 0, 0, 1)):
    return SimpleNamespace(width=width, height=height, k=list(k))


@pytest.mark.parametrize("camera_info, expected", [
    (None, "camera front: no camera_info received"),
    (info(width=1280, height=720), "camera front: camera_info is 1280x720 but the image is "
                                   "640x480"),
    (info(k=(0.0, 0, 320.0, 0, 0.0, 240.0, 0, 0, 1)), "camera front: camera_info focal length "
                                                     "is not positive"),
    (info(k=(500.0, 0, 320.0, 0, 500.0, 240.0)), "camera front: camera_info K has 6 entries"),
    (info(k=(math.nan, 0, 320.0, 0, 500.0, 240.0, 0, 0, 1)), "camera front: camera_info K has a "
                                                            "non-finite entry"),
])
def test_bad_camera_info_names_the_camera_and_the_fault(camera_info, expected):
    problem = camera_info_problem("front", camera_info, (480, 640))
    assert problem is not None and problem.startswith(expected)


def test_good_camera_info_has_no_problem_and_gives_its_intrinsics():
    assert camera_info_problem("front", info(), (480, 640)) is None
    assert CameraIntrinsics.from_camera_info(info()) == CAMERA


@pytest.mark.parametrize("kwargs, match", [
    ({"height_m": 0.0}, "ground.height: invalid value 0.0"),
    ({"height_m": -1.2}, "ground.height: invalid value -1.2"),
    ({"height_m": math.nan}, "ground.height: invalid value nan"),
    ({"height_m": 1.5, "pitch_rad": math.pi / 2}, "ground.pitch: invalid value 1.57"),
    ({"height_m": 1.5, "pitch_rad": -2.0}, "ground.pitch: invalid value -2.0"),
    ({"height_m": 1.5, "max_range_m": 0.0}, "ground.max_range: invalid value 0.0"),
])
def test_impossible_ground_is_refused_by_name(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        FlatGround(**kwargs)
