"""``AnomalyLocator``: regions keep their id per camera, boxes are in the map's pixels, and the
points come from the depth image when there is one, else from the flat ground."""

from __future__ import annotations

import numpy as np
import pytest

from dudes_ros.anomaly_locator import AnomalyLocator, Geometry, working_map
from dudes_ros.anomaly_regions import RegionConfig
from dudes_ros.ground import CameraIntrinsics, FlatGround

CONFIG = RegionConfig(min_area=0.0, opening=1, grow=1.0)


def blob(h: int, w: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """float32 u [h, w]: 0.9 inside ``box`` (x0, y0, x1, y1), 0 elsewhere."""
    u = np.zeros((h, w), np.float32)
    x0, y0, x1, y1 = box
    u[y0:y1, x0:x1] = 0.9
    return u


def test_ids_persist_per_camera_and_reset_retires_them():
    locator = AnomalyLocator(CONFIG)
    first = locator.locate("front", blob(40, 80, (10, 10, 20, 30)), 0.5).regions
    moved = locator.locate("front", blob(40, 80, (11, 10, 21, 30)), 0.5).regions
    other = locator.locate("left", blob(40, 80, (10, 10, 20, 30)), 0.5).regions
    assert [r.box for r in first] == [(10, 10, 20, 30)]
    assert moved[0].id == first[0].id  # the same object, one pixel on
    assert other[0].id == 1  # each camera counts its own ids (ood/regions names the camera)
    locator.reset()
    again = locator.locate("front", blob(40, 80, (11, 10, 21, 30)), 0.5).regions
    assert again[0].id > moved[0].id  # ids are never reused


def test_flat_ground_places_the_contact_at_the_rendered_distance():
    # A level camera 1.5 m above the road, f = 100 px, principal point at the centre of a
    # 200x100 image: a contact on row v lies at z = f * h / (v - cy).
    intrinsics = CameraIntrinsics(100.0, 100.0, 99.5, 49.5, 200, 100)
    u = blob(100, 200, (90, 40, 110, 70))  # bottom row 69: contact at v = 69.5
    located = AnomalyLocator(CONFIG).locate(
        "", u, 0.5, Geometry(intrinsics, FlatGround(1.5, 0.0)))
    z = located.points[:, 2]
    assert located.points.shape == (20, 3)
    np.testing.assert_allclose(z, 100.0 * 1.5 / (69.5 - 49.5), rtol=1e-5)
    np.testing.assert_allclose(located.points[:, 1], 1.5, rtol=1e-5)  # on the road


def test_regions_at_output_scale_use_scaled_intrinsics():
    intrinsics = CameraIntrinsics(100.0, 100.0, 99.5, 49.5, 200, 100)
    full = blob(100, 200, (90, 40, 110, 70))
    half = full[::2, ::2]  # the map after output_scale 0.5
    geometry = Geometry(intrinsics, FlatGround(1.5, 0.0))
    z_full = AnomalyLocator(CONFIG).locate("", full, 0.5, geometry).points[:, 2]
    z_half = AnomalyLocator(CONFIG).locate("", half, 0.5, geometry).points[:, 2]
    np.testing.assert_allclose(z_half.mean(), z_full.mean(), rtol=0.01)


def test_depth_wins_over_the_ground_and_is_resized_to_the_map():
    intrinsics = CameraIntrinsics(100.0, 100.0, 99.5, 49.5, 200, 100)
    depth = np.full((50, 100), 7000, np.uint16)  # 7 m, at half the map's size
    located = AnomalyLocator(CONFIG).locate(
        "", blob(100, 200, (90, 40, 110, 70)), 0.5,
        Geometry(intrinsics, FlatGround(1.5, 0.0), depth))
    np.testing.assert_allclose(located.points[:, 2], 7.0)


def test_no_geometry_no_points_and_no_region_empty_points():
    intrinsics = CameraIntrinsics(100.0, 100.0, 99.5, 49.5, 200, 100)
    locator = AnomalyLocator(CONFIG)
    assert locator.locate("", blob(100, 200, (90, 40, 110, 70)), 0.5).points is None
    assert locator.locate("", blob(100, 200, (90, 40, 110, 70)), 0.5,
                          Geometry(intrinsics)).points is None
    calm = locator.locate("", np.zeros((100, 200), np.float32), 0.5,
                          Geometry(intrinsics, FlatGround(1.5, 0.0)))
    assert calm.regions == [] and calm.points.shape == (0, 3)


def test_a_new_config_applies_from_the_next_frame():
    locator = AnomalyLocator(CONFIG)
    u = blob(100, 200, (90, 40, 110, 70))  # 600 px = 3 % of the image
    assert len(locator.locate("", u, 0.5).regions) == 1
    locator.set_config(RegionConfig(min_area=0.05, opening=1, grow=1.0))
    assert locator.locate("", u, 0.5).regions == []


def test_a_map_over_work_pixels_is_searched_smaller_and_scaled_back():
    """At 1024x2048 (4 x WORK_PIXELS) regions are found on the area-averaged 512x1024 map;
    the mask comes back at full size and each box covers exactly its pixels of that mask."""
    u = blob(1024, 2048, (400, 300, 661, 601))  # odd edges: not on the 2x grid
    u[900:1000, 100:150] = 0.9  # a second region
    located = AnomalyLocator(RegionConfig(min_area=0.0, opening=1, grow=1.0)).locate("", u, 0.5)
    assert working_map(u).shape == (512, 1024) and located.mask.shape == (1024, 2048)
    assert len(located.regions) == 2
    for region in located.regions:
        x0, y0, x1, y1 = region.box
        inside = located.mask[y0:y1, x0:x1] > 0
        assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
        assert region.area == pytest.approx(inside.sum(), rel=0.02)
    big = located.regions[0]
    assert abs(big.x - 400) <= 2 and abs(big.x + big.width - 661) <= 2  # within a work pixel
    assert abs(big.y - 300) <= 2 and abs(big.y + big.height - 601) <= 2
    small = np.ascontiguousarray(u[:512, :1024])
    assert working_map(small) is small  # at or under WORK_PIXELS: searched as it is
