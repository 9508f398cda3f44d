"""``anomaly_regions``: regions of hand-made u maps (boxes, areas, u statistics exact), the
opening and area filter, ids that follow a moving region and are never reused, and the
segmentation override."""

from __future__ import annotations

import numpy as np
import pytest

from dudes_ros.anomaly_regions import (
    RegionConfig,
    RegionTracker,
    box_iou,
    find_regions,
    paint_class,
)
from dudes_ros.config import ConfigError

THRESHOLD = 0.5
NO_FILTER = RegionConfig(min_area=0.0, opening=1, grow=1.0)


def u_map(*blobs: tuple[int, int, int, int, float], size=(60, 80)) -> np.ndarray:
    """float32 u [H, W] of 0.1 with ``(x, y, width, height, u)`` rectangles."""
    u = np.full(size, 0.1, dtype=np.float32)
    for x, y, w, h, value in blobs:
        u[y:y + h, x:x + w] = value
    return u


def test_one_blob_gives_its_exact_box_area_and_u():
    u = u_map((10, 20, 12, 8, 0.9))
    u[20, 10] = 0.7  # the mean and the max must see every pixel of the region
    mask, components, regions = find_regions(u, THRESHOLD, NO_FILTER)
    assert len(regions) == 1
    r = regions[0]
    assert (r.x, r.y, r.width, r.height, r.area) == (10, 20, 12, 8, 96)
    assert r.mean_u == pytest.approx((95 * 0.9 + 0.7) / 96, rel=1e-6)
    assert r.max_u == pytest.approx(0.9)
    assert r.id == -1  # ids come from the tracker
    assert mask.dtype == np.uint8 and mask.shape == u.shape
    assert set(np.unique(mask)) == {0, 255} and int((mask == 255).sum()) == 96
    assert np.array_equal(components == r.label, mask == 255)


def test_two_blobs_are_two_regions_largest_first():
    u = u_map((2, 2, 5, 5, 0.8), (40, 30, 10, 10, 0.95))
    _, components, regions = find_regions(u, THRESHOLD, NO_FILTER)
    assert [(r.x, r.y, r.area) for r in regions] == [(40, 30, 100), (2, 2, 25)]
    assert regions[0].label != regions[1].label
    assert int((components == regions[1].label).sum()) == 25


def test_a_speck_below_min_area_is_dropped_from_regions_and_mask():
    u = u_map((10, 10, 20, 20, 0.9), (60, 50, 3, 3, 0.9))  # 400 px and 9 px of 4800
    config = RegionConfig(min_area=10 / 4800, opening=1)
    mask, components, regions = find_regions(u, THRESHOLD, config)
    assert [r.area for r in regions] == [400]
    assert not mask[50:53, 60:63].any() and not components[50:53, 60:63].any()


def test_opening_cuts_a_thin_line_and_keeps_the_body():
    u = u_map((10, 10, 20, 20, 0.9), (30, 19, 30, 1, 0.9))  # a one-pixel tail to the right
    mask, _, regions = find_regions(u, THRESHOLD, RegionConfig(min_area=0.0, opening=3, grow=1.0))
    assert len(regions) == 1
    assert not mask[19, 32:].any()  # the tail is gone but for the pixel next to the body
    assert (regions[0].x, regions[0].y, regions[0].height) == (10, 10, 20)


def test_grow_extends_a_region_over_its_lower_rim_but_seeds_nothing_new():
    # a core over the threshold inside a rim at 0.3; elsewhere a patch at 0.3 with no core
    u = u_map((10, 10, 20, 20, 0.3), (15, 15, 10, 10, 0.9), (50, 40, 10, 10, 0.3))
    plain = find_regions(u, THRESHOLD, NO_FILTER).regions
    assert [(r.x, r.y, r.width, r.height) for r in plain] == [(15, 15, 10, 10)]
    mask, _, grown = find_regions(u, THRESHOLD, RegionConfig(min_area=0.0, opening=1, grow=0.5))
    assert [(r.x, r.y, r.width, r.height, r.area) for r in grown] == [(10, 10, 20, 20, 400)]
    assert grown[0].mean_u == pytest.approx((100 * 0.9 + 300 * 0.3) / 400, rel=1e-6)
    assert not mask[40:50, 50:60].any()


def test_u_at_the_threshold_is_not_anomalous():
    assert find_regions(u_map((5, 5, 4, 4, THRESHOLD)), THRESHOLD, NO_FILTER).regions == []


@pytest.mark.parametrize("field, value", [("min_area", -0.1), ("min_area", 1.0),
                                          ("opening", 4), ("opening", 0), ("grow", 0.0),
                                          ("grow", 1.5), ("track_iou", 0.0),
                                          ("max_missed", -1)])
def test_bad_config_is_refused_by_name(field, value):
    with pytest.raises(ConfigError, match=rf"regions.{field}: invalid value {value}"):
        RegionConfig(**{field: value})


def test_a_moving_blob_keeps_its_id_and_a_new_one_gets_the_next():
    tracker = RegionTracker(NO_FILTER)
    ids = []
    for step in range(5):
        u = u_map((10 + 3 * step, 20, 12, 10, 0.9))
        ids.append([r.id for r in tracker.update(find_regions(u, THRESHOLD, NO_FILTER).regions)])
    assert ids == [[1]] * 5
    both = tracker.update(find_regions(u_map((22, 20, 12, 10, 0.9), (60, 45, 8, 8, 0.9)),
                                       THRESHOLD, NO_FILTER).regions)
    assert [(r.x, r.id) for r in both] == [(22, 1), (60, 2)]


def test_two_blobs_keep_their_ids_whichever_is_larger():
    tracker = RegionTracker(NO_FILTER)
    first = tracker.update(find_regions(u_map((5, 5, 10, 10, 0.9), (50, 30, 12, 12, 0.9)),
                                        THRESHOLD, NO_FILTER).regions)
    by_x = {r.x: r.id for r in first}
    # the left one grows past the right one: the order changes, the ids do not
    second = tracker.update(find_regions(u_map((5, 5, 14, 14, 0.9), (51, 30, 12, 12, 0.9)),
                                         THRESHOLD, NO_FILTER).regions)
    assert [r.x for r in second] == [5, 51]
    assert {r.x: r.id for r in second} == {5: by_x[5], 51: by_x[50]}


def test_ids_are_never_reused_and_a_short_gap_is_bridged():
    config = RegionConfig(min_area=0.0, opening=1, max_missed=1)
    tracker = RegionTracker(config)
    blob = find_regions(u_map((10, 10, 10, 10, 0.9)), THRESHOLD, config).regions
    assert [r.id for r in tracker.update(blob)] == [1]
    assert tracker.update([]) == []  # one frame unseen: still tracked
    assert [r.id for r in tracker.update(blob)] == [1]
    tracker.update([])
    tracker.update([])  # two frames unseen: retired
    assert [r.id for r in tracker.update(blob)] == [2]
    tracker.reset()
    assert [r.id for r in tracker.update(blob)] == [3]


def test_box_iou_exact():
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0


def test_paint_class_writes_the_class_only_under_the_mask():
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    mask = np.zeros((3, 4), dtype=np.uint8)
    mask[1, 1:3] = 255
    out = paint_class(labels, mask, 200)
    expected = labels.copy()
    expected[1, 1:3] = 200
    assert np.array_equal(out, expected)
    assert labels[1, 1] == 5  # the input is left alone
    with pytest.raises(ValueError, match="class_id .*256"):
        paint_class(labels, mask, 256)
    with pytest.raises(ValueError, match="same shape"):
        paint_class(labels, mask[:2], 200)
