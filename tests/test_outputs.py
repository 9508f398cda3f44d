"""``OutputBuilder``: only the on-demand outputs asked for are built (and cost no conversion or
copy), ``ood`` and ``ood_alarm`` always; every message carries the input header; anomalous
pixels go into ``segmentation`` under the configured class."""

from __future__ import annotations

import numpy as np
import pytest
from rosbags.typesys import get_typestore

from dudes_ros.anomaly_locator import AnomalyLocator, Geometry
from dudes_ros.anomaly_regions import RegionConfig
from dudes_ros.ground import CameraIntrinsics, FlatGround
from dudes_ros.messages import outputs
from dudes_ros.messages.outputs import DEFAULT_ON_DEMAND, ON_DEMAND, OutputBuilder
from dudes_ros.messages.types import OUTPUT_TYPESTORE
from dudes_ros.perception import OodConfig, PerceptionCore
from tests.test_perception import RedIsUncertainPredictor, frame

STORE = get_typestore(OUTPUT_TYPESTORE)
OOD = OodConfig(pixel_threshold=0.5, frame_threshold=0.2)


def header():
    types = STORE.types
    return types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=12, nanosec=34), frame_id="cam")


@pytest.fixture
def result():
    core = PerceptionCore(RedIsUncertainPredictor(), OOD, ["front"])
    return core.process({"front": frame(8, 6, 0.5, green=4)})["front"]


@pytest.fixture
def conversions(monkeypatch):
    """The encodings ``array_to_image_fields`` was called with."""
    seen = []
    real = outputs.array_to_image_fields

    def spy(array, encoding):
        seen.append(encoding)
        return real(array, encoding)

    monkeypatch.setattr(outputs, "array_to_image_fields", spy)
    return seen


def test_planner_set_builds_only_what_it_names(result, conversions):
    builder = OutputBuilder(STORE, frozenset({"segmentation", "confidence"}))
    messages = list(builder.messages(header(), "front", result))
    assert [name for name, _, _ in messages] == ["segmentation", "confidence", "ood",
                                                 "ood_alarm"]
    assert conversions == ["mono8", "mono8"]  # no 32FC1 copy, no colour image
    seg = messages[0][2]
    assert (seg.height, seg.width, seg.header.stamp.sec, seg.header.stamp.nanosec) == (
        8, 6, 12, 34)
    assert np.array_equal(seg.data.reshape(8, 6), result.labels)
    assert messages[3][2].data is False


def test_unwatched_confidence_is_never_computed(result, conversions):
    builder = OutputBuilder(STORE, frozenset({"segmentation"}))
    assert [n for n, _, _ in builder.messages(header(), "front", result)] == [
        "segmentation", "ood", "ood_alarm"]
    assert "confidence" not in vars(result) and conversions == ["mono8"]


def located(result, geometry=None):
    locator = AnomalyLocator(RegionConfig(min_area=0.0, opening=1, grow=1.0))
    return locator.locate("front", result.uncertainty, result.ood.pixel_threshold, geometry)


def test_every_output_and_the_default(result, conversions):
    geometry = Geometry(CameraIntrinsics(4.0, 4.0, 2.5, 3.5, 6, 8), FlatGround(1.5, 0.2))
    everything = [n for n, _, _ in OutputBuilder(STORE, ON_DEMAND).messages(
        header(), "front", result, located(result, geometry))]
    assert everything == list(outputs.OUTPUT_TOPICS)
    assert sorted(OutputBuilder(STORE).topics("/cam")) == sorted(
        [f"/cam/{n}" for n in DEFAULT_ON_DEMAND] + ["/cam/ood", "/cam/ood_alarm"])
    with pytest.raises(ValueError, match=r"unknown on-demand output\(s\) \['ood'\]"):
        OutputBuilder(STORE, frozenset({"ood"}))


def test_regions_need_the_located_anomalies_and_points_need_geometry(result):
    builder = OutputBuilder(STORE, frozenset({"ood/mask", "ood/regions", "ood/points"}))
    assert builder.needs_regions
    with pytest.raises(ValueError, match="needs the frame's anomaly regions"):
        list(builder.messages(header(), "front", result))
    found = located(result)
    messages = {n: m for n, _, m in builder.messages(header(), "front", result, found)}
    assert sorted(messages) == ["ood", "ood/mask", "ood/regions", "ood_alarm"]  # no geometry
    mask = messages["ood/mask"].data.reshape(8, 6)
    assert np.array_equal(mask > 0, result.uncertainty > OOD.pixel_threshold)
    (status,) = messages["ood/regions"].status
    values = {kv.key: kv.value for kv in status.values}
    assert (values["y"], values["height"], values["width"], status.hardware_id) == (
        "0", "4", "6", "front")
    assert messages["ood/regions"].header.stamp.nanosec == 34


def test_segmentation_class_paints_the_anomaly_into_segmentation(result):
    builder = OutputBuilder(STORE, frozenset({"segmentation"}), segmentation_class=200)
    assert builder.needs_regions
    found = located(result)
    (seg,) = [m for n, _, m in builder.messages(header(), "front", result, found)
              if n == "segmentation"]
    labels = seg.data.reshape(8, 6)
    anomalous = result.uncertainty > OOD.pixel_threshold
    assert anomalous.any() and (labels[anomalous] == 200).all()
    assert np.array_equal(labels[~anomalous], result.labels[~anomalous])
    assert not OutputBuilder(STORE, frozenset({"confidence"}), segmentation_class=200
                             ).needs_regions


def test_heat_map_equals_the_rounded_clipped_colour_map():
    import cv2

    u = np.linspace(-0.2, 1.2, 64 * 50, dtype=np.float32).reshape(64, 50)
    u[0, :4] = [0.5 / 255, 1.5 / 255, 2.5 / 255, np.float32(254.5 / 255)]  # ties to even
    scaled = np.rint(np.clip(u, 0.0, 1.0) * 255.0).astype(np.uint8)
    expected = cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(outputs.heat_map(u), expected)
