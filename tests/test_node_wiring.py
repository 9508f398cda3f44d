"""A user's first hour with the bare node: which topic and type it reads, why nothing arrives
(in words, in the log and /diagnostics), what its model was trained on, and ``--help``.

The wording is checked on plain data first (``dudes_ros.ros.health``), then on a running node
in its own process: publishers of the wrong type on its topic, and no publisher at all."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dudes_ros.messages.types import COMPRESSED_IMAGE, IMAGE
from dudes_ros.ros import usage
from dudes_ros.ros.distro import current
from dudes_ros.ros.health import (
    Input,
    Publisher,
    input_problem,
    level_and_message,
    synthetic_warning,
    trained_on_text,
)
from dudes_ros.ros.params import PARAMETERS
from dudes_ros.runtime.manifest import model_trained_on
from tests.conftest import REPO

RAW = Input("", "image", "/cam/image_raw", IMAGE)
CAMERA_PUBLISHER = Publisher("/camera_driver", COMPRESSED_IMAGE, reliable=True)


# --- wording on plain data -------------------------------------------------------------------

def test_publishers_of_another_type_are_named_at_once_with_the_fix():
    inp = Input("", "image", "/cam/image_raw/compressed", IMAGE)
    detail = ("publishers of /cam/image_raw/compressed carry sensor_msgs/msg/CompressedImage; "
              "this node subscribes sensor_msgs/msg/Image (set transport:=compressed and remap "
              "the base topic: -p transport:=compressed -r image:=/cam/image_raw)")
    early = input_problem(inp, [CAMERA_PUBLISHER], 0.5, 5.0, False, {})
    assert early.text == detail  # no waiting: such publishers can never deliver
    late = input_problem(inp, [CAMERA_PUBLISHER], 7.2, 5.0, False, {})
    assert late.text == ("no frames received on /cam/image_raw/compressed "
                         f"(sensor_msgs/msg/Image) for 7 s: {detail}")
    assert late.key == early.key  # the log says it once
    odd = Input("front", "front/image", "/front/jpeg", COMPRESSED_IMAGE)
    raw_there = input_problem(odd, [Publisher("/drv", IMAGE, True)], 0.0, 5.0, False, {})
    assert raw_there.text.endswith("(set transport:=raw and remap: -p transport:=raw "
                                   "-r front/image:=/front/jpeg)")
    other = input_problem(RAW, [Publisher("/drv", "std_msgs/msg/String", True)], 0, 5, False, {})
    assert other.text.endswith(f"(remap image to a topic of {IMAGE} or {COMPRESSED_IMAGE})")


def test_silence_after_the_timeout_with_what_the_graph_shows():
    assert input_problem(RAW, [], 4.9, 5.0, False, {}) is None
    assert input_problem(RAW, [], 600.0, 0.0, False, {}) is None  # input_timeout 0: never
    alone = input_problem(RAW, [], 5.1, 5.0, False, {})
    assert alone.text == (
        "no frames received on /cam/image_raw (sensor_msgs/msg/Image) for 5 s: no publisher on "
        "/cam/image_raw; no camera topic is published that this node can see (same "
        "ROS_DOMAIN_ID and ROS_AUTOMATIC_DISCOVERY_RANGE as the camera?)")
    hinted = input_problem(RAW, [], 6.0, 5.0, False, {
        "/a/jpeg": COMPRESSED_IMAGE, "/cam/image_raw/compressed": COMPRESSED_IMAGE})
    assert hinted.text.endswith(  # the sibling of the topic read comes first
        "no publisher on /cam/image_raw; camera topics published: /cam/image_raw/compressed "
        "(sensor_msgs/msg/CompressedImage), /a/jpeg (sensor_msgs/msg/CompressedImage); to "
        "read /cam/image_raw/compressed: set transport:=compressed and remap the base topic: "
        "-p transport:=compressed -r image:=/cam/image_raw")
    many = {f"/cam{i}/image_raw": IMAGE for i in range(9)}
    listed = input_problem(RAW, [], 6.0, 5.0, False, many).text.split("published: ")[1]
    assert listed.count("(sensor_msgs/msg/Image)") == 5  # a big graph does not drown it
    best_effort = [Publisher("/drv", IMAGE, reliable=False)]
    qos = input_problem(RAW, best_effort, 6.0, 5.0, True, {})
    assert qos.text.endswith("its publishers (/drv) are best effort and this node subscribes "
                             "reliable, so they never match (qos.reliability:=best_effort)")
    assert input_problem(RAW, best_effort, 6.0, 5.0, False, {}).text.endswith(
        "1 publisher(s) (/drv) of the right type sent nothing that arrived: are they "
        'publishing? (large images over Fast DDS: README "Large images over Fast DDS")')
    assert input_problem(RAW, best_effort, 1.0, 5.0, False, {}) is None


def test_level_order():
    recent = (30, {"rejected": 1, "errors": 0, "dropped_stale": 0})
    assert level_and_message("configure failed: x", "unconfigured", ["p"], recent, 0.5) == (
        "error", "configure failed: x")
    assert level_and_message(None, "inactive", ["p"], recent, 0.5) == ("warn", "inactive")
    assert level_and_message(None, "active", ["a", "b"], recent, 0.5) == ("warn", "a; b")
    assert level_and_message(None, "active", [], recent, 0.5)[1].startswith("1 rejected")
    assert level_and_message(None, "active", [], (30, {"rejected": 0, "errors": 0,
                                                       "dropped_stale": 0}), 0.5) == (
        "ok", "streaming")


def test_the_bundled_model_says_it_never_saw_a_real_image():
    model = REPO / "engines" / "dudes_student.onnx"
    trained = model_trained_on(model)
    assert trained["dataset"] == "synthetic" and trained["real_images"] is False
    assert trained_on_text(trained) == (f"synthetic: {trained['description']} "
                                        "(real camera images: no)")
    warning = synthetic_warning(trained, model)
    assert warning.startswith(f"model {model} has seen only synthetic street scenes, never a "
                              "real camera image: on real camera images expect wrong classes")
    assert "model:=/path/to/student.onnx" in warning
    assert 'README section "From Cityscapes to the car"' in warning
    assert synthetic_warning({**trained, "real_images": True}, model) is None
    assert synthetic_warning({**trained, "real_images": None}, model) is None


# --- --help ----------------------------------------------------------------------------------

def test_help_prints_usage_and_never_starts_ros(monkeypatch, capsys):
    from dudes_ros.ros import node

    def refuse(*_, **__):
        raise AssertionError("--help started ROS")

    monkeypatch.setattr(node.rclpy, "init", refuse)
    for flag in usage.HELP_FLAGS:
        assert node.main([flag]) == 0
        text = capsys.readouterr().out
        assert text.startswith("usage: dudes_node [-h] [--ros-args")
        for spec in PARAMETERS:
            assert f"\n  {spec.name} ({spec.type_name}, default " in text, spec.name
        for topic in ("image ", "image/compressed ", "segmentation ", "ood_alarm ",
                      "/diagnostics "):
            assert f"\n  {topic}" in text, topic
        assert "dudes_node --ros-args -r image:=/camera/image_raw -p transport:=compressed" in text
        for name in current().profile_variables:  # the names this distribution's Fast DDS reads
            assert f"export {name}=" in text
    # help after --ros-args belongs to ROS; a stray argument before it is refused, not ignored
    assert usage.wants_help(["--ros-args", "-h"]) is False
    assert node.main(["-p", "transport:=compressed"]) == 2
    error = capsys.readouterr().err
    assert "unrecognised argument(s) ['-p', 'transport:=compressed']" in error
    assert "ROS arguments go after --ros-args" in error


def test_console_script_help():
    script = Path(sys.executable).parent / "dudes_node"
    if not script.is_file():
        pytest.skip(f"no dudes_node console script beside {sys.executable} (package not "
                    "installed in this environment)")
    started = time.monotonic()
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == usage.usage()
    print(f"dudes_node --help took {time.monotonic() - started:.1f} s")


# --- a running node --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from tests.helpers.export_models import write_student

    return write_student(tmp_path_factory.mktemp("wiring"))[1]


def start_node(log: Path, namespace: str, remap: str, model: Path,
               *parameters: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "dudes_ros.ros.node", "--ros-args", "-r", f"__ns:={namespace}",
            "-r", remap, "-p", f"model:={model}", "-p", "device:=cpu",
            "-p", "input_timeout:=1.0", "-p", "diagnostics_period:=0.2",
            "-p", "ood.pixel_threshold:=0.5", "-p", "ood.frame_threshold:=0.1"]
    for parameter in parameters:
        args += ["-p", parameter]
    return subprocess.Popen(args, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT)


class Watcher:
    """Collects the node's /diagnostics status and spins while publishers send."""

    def __init__(self, namespace: str) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor

        self.node = rclpy.create_node(f"wiring_watcher{namespace.replace('/', '_')}")
        self.name = f"{namespace}/dudes_node: inference"
        self.statuses = []
        self.node.create_subscription(
            DiagnosticArray, "/diagnostics",
            lambda m: self.statuses.extend(s for s in m.status if s.name == self.name), 50)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.sending: list[tuple[object, object]] = []  # (publisher, message) sent every 0.1 s

    def until(self, condition, timeout: float, process: subprocess.Popen, log: Path):
        """The first status for which ``condition`` holds, within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        next_send, last = 0.0, None
        while time.monotonic() < deadline:
            assert process.poll() is None, f"node exited:\n{log.read_text()}"
            if time.monotonic() >= next_send:
                for publisher, msg in self.sending:
                    msg.header.stamp = self.node.get_clock().now().to_msg()
                    publisher.publish(msg)
                next_send = time.monotonic() + 0.1
            self.executor.spin_once(timeout_sec=0.02)
            while self.statuses:
                last = self.statuses.pop(0)
                if condition(last):
                    return last
        last = None if last is None else (last.level, last.message)
        raise AssertionError(f"no such /diagnostics status in {timeout} s (last: {last!r})\n"
                             f"{log.read_text()}")


def values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def jpeg(rgb: np.ndarray):
    import cv2
    from sensor_msgs.msg import CompressedImage

    return CompressedImage(format="jpeg", data=cv2.imencode(".jpg", rgb[..., ::-1])[1].tobytes())


@pytest.mark.ros
def test_wrong_input_type_warns_with_topic_types_and_fix(ros_context, model, tmp_path):
    """The issue's first attempt: ``-r image:=<camera>/compressed`` with the default raw
    transport. The node reads that topic as Image, its publisher carries CompressedImage."""
    from diagnostic_msgs.msg import DiagnosticStatus
    from sensor_msgs.msg import CompressedImage

    log = tmp_path / "node.log"
    process = start_node(log, "/wired", "image:=/cam/image_raw/compressed", model)
    watcher = Watcher("/wired")
    camera = watcher.node.create_publisher(CompressedImage, "/cam/image_raw/compressed", 10)
    watcher.sending.append((camera, jpeg(np.full((64, 128, 3), 90, np.uint8))))
    pattern = re.compile(
        r"no frames received on /cam/image_raw/compressed \(sensor_msgs/msg/Image\) for (\d+) "
        r"s: publishers of /cam/image_raw/compressed carry sensor_msgs/msg/CompressedImage; "
        r"this node subscribes sensor_msgs/msg/Image \(set transport:=compressed and remap the "
        r"base topic: -p transport:=compressed -r image:=/cam/image_raw\)")
    try:
        status = watcher.until(lambda s: pattern.fullmatch(s.message), 60, process, log)
        assert status.level == DiagnosticStatus.WARN
        assert int(pattern.fullmatch(status.message).group(1)) >= 1
        got = values(status)
        assert got["frames_in"] == "0" and got["state"] == "active"
        assert got["inputs"] == "camera: /cam/image_raw/compressed (sensor_msgs/msg/Image)"
        assert got["trained_on"].startswith("synthetic: synthetic street scenes") and \
            got["trained_on"].endswith("(real camera images: no)")
    finally:
        watcher.node.destroy_node()
        process.terminate()
        process.wait(timeout=20)
    text = log.read_text()
    assert ("input: /cam/image_raw/compressed (sensor_msgs/msg/Image); transport raw, base "
            "topic image -> /cam/image_raw/compressed") in text
    warnings = [line for line in text.splitlines() if "publishers of /cam/image_raw" in line]
    assert warnings and all("[WARN]" in line for line in warnings), text
    assert len({line.split("]: ", 1)[1] for line in warnings}) <= 2, text  # said, not spammed
    synthetic = [line for line in text.splitlines() if "has seen only synthetic" in line]
    assert len(synthetic) == 1 and "[WARN]" in synthetic[0], text


@pytest.mark.ros
def test_no_publisher_warns_then_hints_then_recovers(ros_context, model, tmp_path):
    """No camera at all: WARN naming the topic and type; a camera on the compressed topic
    beside it: the hint says how to read it; a camera of the right type: OK again."""
    from diagnostic_msgs.msg import DiagnosticStatus
    from sensor_msgs.msg import CompressedImage, Image

    log = tmp_path / "node.log"
    process = start_node(log, "/quiet", "image:=/front_cam/image_raw", model,
                         "max_input_age:=5.0")
    watcher = Watcher("/quiet")
    head = (re.escape("no frames received on /front_cam/image_raw (sensor_msgs/msg/Image) for ")
            + r"(\d+)" + re.escape(" s: no publisher on /front_cam/image_raw; "))
    nothing = re.compile(head + re.escape(
        "no camera topic is published that this node can see (same ROS_DOMAIN_ID and "
        "ROS_AUTOMATIC_DISCOVERY_RANGE as the camera?)"))
    hint = re.compile(head + re.escape(
        "camera topics published: /front_cam/image_raw/compressed "
        "(sensor_msgs/msg/CompressedImage); to read /front_cam/image_raw/compressed: set "
        "transport:=compressed and remap the base topic: -p transport:=compressed "
        "-r image:=/front_cam/image_raw"))
    try:
        status = watcher.until(lambda s: nothing.fullmatch(s.message), 60, process, log)
        assert status.level == DiagnosticStatus.WARN and values(status)["frames_in"] == "0"
        compressed = watcher.node.create_publisher(
            CompressedImage, "/front_cam/image_raw/compressed", 10)
        watcher.sending.append((compressed, jpeg(np.full((64, 128, 3), 90, np.uint8))))
        status = watcher.until(lambda s: hint.fullmatch(s.message), 20, process, log)
        assert status.level == DiagnosticStatus.WARN
        raw = watcher.node.create_publisher(Image, "/front_cam/image_raw", 10)
        frame = Image(height=64, width=128, encoding="rgb8", step=384,
                      data=np.full(64 * 128 * 3, 90, np.uint8).tobytes())
        watcher.sending.append((raw, frame))
        status = watcher.until(lambda s: s.level == DiagnosticStatus.OK, 30, process, log)
        assert status.message == "streaming" and int(values(status)["frames_processed"]) > 0
    finally:
        watcher.node.destroy_node()
        process.terminate()
        process.wait(timeout=20)
    assert "input /front_cam/image_raw (sensor_msgs/msg/Image): frames arrive" in (
        log.read_text())
