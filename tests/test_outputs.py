"""``OutputBuilder``: only the image outputs asked for are built (and cost no conversion or
copy), ``ood`` and ``ood_alarm`` always; every message carries the input header."""

from __future__ import annotations

import numpy as np
import pytest
from rosbags.typesys import get_typestore

from dudes_ros.messages import outputs
from dudes_ros.messages.outputs import DEFAULT_IMAGES, IMAGE_TOPICS, OutputBuilder
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


def test_every_output_and_the_default(result, conversions):
    everything = [n for n, _, _ in OutputBuilder(STORE, IMAGE_TOPICS).messages(
        header(), "front", result)]
    assert everything == list(outputs.OUTPUT_TOPICS)
    assert sorted(OutputBuilder(STORE).topics("/cam")) == sorted(
        [f"/cam/{n}" for n in DEFAULT_IMAGES] + ["/cam/ood", "/cam/ood_alarm"])
    with pytest.raises(ValueError, match=r"unknown image output\(s\) \['ood'\]"):
        OutputBuilder(STORE, frozenset({"ood"}))


def test_heat_map_equals_the_rounded_clipped_colour_map():
    import cv2

    u = np.linspace(-0.2, 1.2, 64 * 50, dtype=np.float32).reshape(64, 50)
    u[0, :4] = [0.5 / 255, 1.5 / 255, 2.5 / 255, np.float32(254.5 / 255)]  # ties to even
    scaled = np.rint(np.clip(u, 0.0, 1.0) * 255.0).astype(np.uint8)
    expected = cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(outputs.heat_map(u), expected)
