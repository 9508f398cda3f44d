"""dudes_node with ``backend:=tensorrt`` on the TensorRT and cuda-python test stand-ins: three
cameras in one engine, an engine built ahead by ``dudes build-engine`` loaded without a
rebuild, and a frame outside the engine's profile rejected while streaming goes on."""

from __future__ import annotations

import os

import pytest

from tests import test_node
from tests.helpers import standins
from tests.test_node import (
    Client,
    check_outputs,
    drive_frame,
    image_msg,
    serving,
    start_node,
)

pytestmark = pytest.mark.ros
model, offline = test_node.model, test_node.offline  # the same tiny model and its reference
CAMERAS = ["front", "left", "right"]
MAX_SIZE = "96x160"


@pytest.fixture(scope="module", params=standins.VERSIONS)
def trt_version(request) -> str:
    """Each TensorRT version the stand-in plays (the node runs once per version)."""
    return request.param


@pytest.fixture(scope="module")
def prebuilt(model, trt_version, tmp_path_factory):
    """``dudes build-engine`` with the node's settings (3 cameras, max size, fp32 so that the
    outputs equal ONNX Runtime's fp32 reference exactly) into a cache."""
    from dudes_ros.cli import main as dudes

    cache = tmp_path_factory.mktemp("engines")
    with standins.installed(trt_version):
        assert dudes(["build-engine", str(model), "--max-batch", str(len(CAMERAS)),
                      "--max-size", MAX_SIZE, "--precision", "fp32",
                      "--cache-dir", str(cache)]) == 0
    return cache


@pytest.fixture(scope="module")
def trt_node(ros_context, model, trt_version, prebuilt, tmp_path_factory):
    log = tmp_path_factory.mktemp("node") / "node.log"
    process = start_node(standins.standin_env(dict(os.environ), trt_version), log, model=model,
                         backend="tensorrt", cameras=f"[{','.join(CAMERAS)}]",
                         engine__precision="fp32",
                         engine__cache_dir=prebuilt, engine__max_size=MAX_SIZE,
                         qos__reliability="reliable", diagnostics_period=0.2,
                         max_input_age=5.0, ood__pixel_threshold=0.5,
                         ood__frame_threshold=0.1)
    with serving(Client(CAMERAS), process, log) as running:
        yield running


def test_prebuilt_engine_is_loaded_without_a_rebuild(trt_node, prebuilt):
    client, _, log = trt_node
    counts = client.latest_counts()
    assert counts["backend"] == "tensorrt"
    assert counts["model_engine_built_now"] == "False"
    assert counts["model_engine_reason"] == "cache hit"
    assert counts["model_max_batch"] == str(len(CAMERAS))
    assert [p.name for p in prebuilt.glob("*.engine")] == [
        os.path.basename(counts["model_engine"])]
    assert "building TensorRT engine" not in log.read_text()


def test_three_cameras_answer_every_frame_like_onnxruntime(trt_node, offline):
    client, _, _ = trt_node
    for round_ in range(2):
        frames = {c: drive_frame(10 * round_ + i, anomaly=i == 1) for i, c in enumerate(CAMERAS)}
        stamps = {}
        for camera, frame in frames.items():
            msg = image_msg(frame, f"{camera}-{round_}")
            client.send(camera, msg, wait_for=None)
            stamps[camera] = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        assert client.spin_until(lambda r=round_: all(
            (c, name, f"{c}-{r}") in client.received for c in CAMERAS
            for name in ("segmentation", "uncertainty", "confidence", "ood")), 10)
        for camera, frame in frames.items():
            check_outputs(client, camera, f"{camera}-{round_}", *offline(frame),
                          stamp=stamps[camera])
    # The context holds the scratch memory of the shapes seen, not of the profile's largest.
    client.spin_until(lambda: False, 0.5)
    counts = client.latest_counts()
    used = int(counts["model_context_device_memory_bytes"])
    assert 0 < used < int(counts["model_engine_device_memory_max_bytes"]), counts


def test_frame_outside_the_profile_is_rejected_and_streaming_goes_on(trt_node, offline):
    client, process, log = trt_node
    client.send("front", image_msg(drive_frame(1, False, h=100, w=200), "too-big"),
                wait_for=None)
    client.spin_until(lambda: False, 0.5)
    good = drive_frame(2, False)
    client.send("front", image_msg(good, "after-too-big"))
    check_outputs(client, "front", "after-too-big", *offline(good))
    assert not any(k[2] == "too-big" for k in client.received)
    counts = client.latest_counts()
    assert counts.get("rejected_size") == "1", counts
    assert process.poll() is None
    assert "image 100x200 is outside the TensorRT engine's profile 16x16..96x160" in (
        log.read_text())
