"""dudes_node over real rclpy: the node runs in its own process, this process publishes frames
and checks every output against the offline predictor on the same frames."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Bool  # noqa: E402

H, W = 64, 128
N_FRAMES, ENTER, LEAVE = 14, 4, 8  # the anomaly is visible in frames ENTER .. LEAVE-1
RAISE_AFTER, CLEAR_AFTER = 2, 2
OUTPUT_TOPICS = {"segmentation": Image, "uncertainty": Image, "confidence": Image,
                 "segmentation/color": Image, "uncertainty/color": Image,
                 "ood": DiagnosticArray, "ood_alarm": Bool}


# --- model and frames ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A random-init tiny student exported as a real deploy-graph ONNX with its manifest
    (exported with torch, or its export copied where torch is absent:
    tests/helpers/tiny_models)."""
    from tests.helpers.tiny_models import tiny_onnx

    return tiny_onnx(tmp_path_factory.mktemp("model"), "node")


@pytest.fixture(scope="module")
def offline(model):
    from dudes_ros.inference.factory import create_predictor

    with create_predictor(model, backend="onnxruntime", device="cpu") as predictor:
        yield lambda rgb: tuple(a[0] for a in predictor.predict(rgb[None]))


def drive_frame(index: int, anomaly: bool, h: int = H, w: int = W) -> np.ndarray:
    """A cheap street-like frame for the per-message checks: sky, buildings, road; with
    ``anomaly``, a saturated checkerboard object on the road. RGB uint8 [h, w, 3]."""
    rng = np.random.default_rng(index)
    image = np.empty((h, w, 3), np.uint8)
    image[: h // 3] = (70, 130, 180)
    columns = (np.arange(w) + 3 * index) // 16 % 2
    image[h // 3: 2 * h // 3] = np.where(columns[:, None], (70, 70, 70), (110, 100, 90))
    image[2 * h // 3:] = (128, 64, 128)
    image = np.clip(image + rng.integers(-6, 7, image.shape), 0, 255).astype(np.uint8)
    if anomaly:
        ys, xs = np.mgrid[: h // 2, : w // 3]
        board = ((ys // 4 + xs // 4) % 2).astype(bool)
        patch = np.where(board[..., None], (255, 0, 255), (0, 255, 0)).astype(np.uint8)
        image[h // 3: h // 3 + h // 2, w // 3: w // 3 + w // 3] = patch
    return image


def anomaly_drive(seed: int) -> list[np.ndarray]:
    """``render_sequence`` frames (the anomaly enters a quarter of the frame tall) whose
    anomaly pixels get a saturated checkerboard: the random-init tiny model does not react to
    the synthetic objects themselves (nor does the CPU-trained bundled student, see
    engines/MODEL_CARD.md)."""
    from dudes_ros.data.synthetic import render_sequence

    scenes = render_sequence(seed, (H, W), N_FRAMES, ENTER, LEAVE, entry_height=H // 4)
    assert [bool(s.anomaly_mask.any()) for s in scenes] == [
        ENTER <= i < LEAVE for i in range(N_FRAMES)]
    ys, xs = np.mgrid[:H, :W]
    board = ((ys // 4 + xs // 4) % 2).astype(bool)[..., None]
    texture = np.where(board, (255, 0, 255), (0, 255, 0)).astype(np.uint8)
    return [np.where(s.anomaly_mask[..., None], texture, s.image) for s in scenes]


@pytest.fixture(scope="module")
def drive(offline):
    """A synthetic drive, its offline outputs, and OOD thresholds under which the tiny model's
    uncertainty separates the anomaly frames: pixel threshold = the highest u on any normal
    frame (so normal frames score 0), frame threshold = half the lowest anomaly-frame score.
    The first street (seed) where every anomaly frame scores above 0 is used."""
    tried = {}
    for seed in range(8):
        frames = anomaly_drive(seed)
        outputs = [offline(f) for f in frames]
        normal = [u for i, (_, u) in enumerate(outputs) if not ENTER <= i < LEAVE]
        pixel_threshold = float(max(u.max() for u in normal))
        scores = [float(np.mean(u > pixel_threshold)) for _, u in outputs]
        tried[seed] = scores
        if min(scores[ENTER:LEAVE]) > 0.0:
            return frames, outputs, pixel_threshold, min(scores[ENTER:LEAVE]) / 2
    raise AssertionError(f"the tiny model separates no synthetic drive: {tried}")


# --- node process and test-side ROS plumbing -------------------------------------------------

def start_node(env: dict, log: Path, namespace: str = "", **parameters) -> subprocess.Popen:
    args = [sys.executable, "-m", "dudes_ros.ros.node", "--ros-args"]
    if namespace:
        args += ["-r", f"__ns:=/{namespace}"]
    for name, value in parameters.items():
        args += ["-p", f"{name.replace('__', '.')}:={value}"]
    return subprocess.Popen(args, env=env, cwd=REPO, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)


class Client:
    """Publishes frames to the node and collects its outputs keyed by (camera, frame_id)."""

    def __init__(self, cameras: list[str], transport: str = "raw", namespace: str = "") -> None:
        self.node = rclpy.create_node(f"dudes_test_client_{transport}")
        self.status_name = f"{'/' + namespace if namespace else ''}/dudes_node: inference"
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.received: dict[tuple[str, str, str], object] = {}
        self.diagnostics: list[DiagnosticStatus] = []
        self.alarms: dict[str, list[bool]] = {c: [] for c in cameras}
        self.pubs, self.subs = {}, []
        for camera in cameras:
            prefix = (f"{namespace}/" if namespace else "") + (f"{camera}/" if camera else "")
            in_type = CompressedImage if transport == "compressed" else Image
            in_topic = prefix + ("image/compressed" if transport == "compressed" else "image")
            self.pubs[camera] = self.node.create_publisher(in_type, in_topic, qos)
            for name, msg_type in OUTPUT_TOPICS.items():
                self.subs.append(self.node.create_subscription(
                    msg_type, prefix + name,
                    lambda msg, c=camera, n=name: self._store(c, n, msg), qos))
        self.subs.append(self.node.create_subscription(
            DiagnosticArray, "/diagnostics", self._on_diagnostics, qos))

    def _store(self, camera, name, msg):
        if name == "ood_alarm":
            self.alarms[camera].append(msg.data)
            return
        self.received[(camera, name, msg.header.frame_id)] = msg

    def _on_diagnostics(self, msg):
        self.diagnostics += [s for s in msg.status if s.name == self.status_name]

    def spin_until(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return condition()

    def wait_ready(self, process: subprocess.Popen, log: Path) -> None:
        def ready():
            assert process.poll() is None, f"node exited:\n{log.read_text()}"
            return all(p.get_subscription_count() > 0 for p in self.pubs.values()) and all(
                s.get_publisher_count() > 0 for s in self.subs)
        assert self.spin_until(ready, 60), f"node not ready:\n{log.read_text()}"

    def send(self, camera: str, msg, wait_for: str | None = "confidence") -> None:
        """Publish; with ``wait_for``, wait for that output (resending lost frames), then for
        every other output of the frame (the node publishes them from several threads)."""
        for _ in range(3):
            msg.header.stamp = self.node.get_clock().now().to_msg()
            alarms = len(self.alarms[camera])
            self.pubs[camera].publish(msg)
            if wait_for is None:
                return
            frame_id = msg.header.frame_id
            if self.spin_until(lambda k=(camera, wait_for, frame_id): k in self.received, 5.0):
                def complete(f=frame_id, n=alarms) -> bool:
                    return len(self.alarms[camera]) > n and all(
                        (camera, name, f) in self.received
                        for name in OUTPUT_TOPICS if name != "ood_alarm")
                assert self.spin_until(complete, 5.0), frame_id
                return
        raise AssertionError(f"no {wait_for} for {camera}/{msg.header.frame_id}")

    def latest_status(self, timeout: float = 3.0) -> DiagnosticStatus:
        """A /diagnostics status published after everything sent so far was handled."""
        self.diagnostics.clear()
        self.spin_until(lambda: len(self.diagnostics) >= 2, timeout)
        assert self.diagnostics, "no /diagnostics from the node"
        return self.diagnostics[-1]

    def latest_counts(self, timeout: float = 3.0) -> dict[str, str]:
        return {kv.key: kv.value for kv in self.latest_status(timeout).values}

    def close(self) -> None:
        self.node.destroy_node()


@contextlib.contextmanager
def serving(client: Client, process: subprocess.Popen, log: Path):
    """``(client, process, log)`` once the node serves ``client``; afterwards the client is
    closed and the node stopped."""
    try:
        client.wait_ready(process, log)
        yield client, process, log
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=20)


def image_msg(rgb: np.ndarray, frame_id: str, encoding: str = "rgb8", pad: int = 0) -> Image:
    from tests.test_conversions import pack

    data, step = pack(rgb, encoding, pad)
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, is_bigendian=0,
                step=step, data=data)
    msg.header.frame_id = frame_id
    return msg


def as_array(msg: Image) -> np.ndarray:
    dtype = np.float32 if msg.encoding == "32FC1" else np.uint8
    channels = 3 if msg.encoding == "rgb8" else 1
    array = np.frombuffer(msg.data, dtype).reshape(msg.height, msg.width, channels)
    return array[..., 0] if channels == 1 else array


@pytest.fixture(scope="module")
def two_cameras(ros_context, model, drive, tmp_path_factory):
    """The node with cameras [front, left], raw input, thresholds from ``drive``. Most tests
    feed only front: input_timeout 0 keeps the silent left camera out of the level they
    check (tests/test_node_wiring.py checks that warning)."""
    import os

    _, _, pixel_threshold, frame_threshold = drive
    log = tmp_path_factory.mktemp("node") / "node.log"
    process = start_node(dict(os.environ), log, model=model, device="cpu", cameras="[front,left]",
                         qos__reliability="reliable", ood__pixel_threshold=pixel_threshold,
                         ood__frame_threshold=frame_threshold, ood__raise_after=RAISE_AFTER,
                         ood__clear_after=CLEAR_AFTER, diagnostics_period=0.2,
                         max_input_age=5.0, input_timeout=0.0)
    with serving(Client(["front", "left"]), process, log) as running:
        yield running


# --- tests -----------------------------------------------------------------------------------

def check_outputs(client, camera, frame_id, expected_labels, expected_u, stamp=None):
    got = {name: client.received[(camera, name, frame_id)]
           for name in ("segmentation", "uncertainty", "confidence", "ood")}
    for name, msg in got.items():
        assert msg.header.frame_id == frame_id, name
        if stamp is not None:
            assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == stamp, name
    assert got["segmentation"].encoding == "mono8" and got["uncertainty"].encoding == "32FC1"
    labels, u = as_array(got["segmentation"]), as_array(got["uncertainty"])
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_allclose(u, expected_u, atol=1e-5)
    assert 0.0 <= u.min() and u.max() <= 1.0
    confidence = as_array(got["confidence"])
    np.testing.assert_array_equal(confidence, np.rint(255 * (1 - u)).astype(np.uint8))
    return got


def test_synthetic_drive_matches_offline_and_alarm_follows_the_anomaly(two_cameras, drive):
    client, _, _ = two_cameras
    frames, outputs, _, frame_threshold = drive
    client.alarms["front"].clear()
    for i, frame in enumerate(frames):
        msg = image_msg(frame, f"drive{i}")
        client.send("front", msg)
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        got = check_outputs(client, "front", f"drive{i}", *outputs[i], stamp=stamp)
        values = {kv.key: kv.value for kv in got["ood"].status[0].values}
        assert float(values["threshold"]) == pytest.approx(frame_threshold, abs=1e-6)
        assert (float(values["score"]) > frame_threshold) == (ENTER <= i < LEAVE)
    alarms = client.alarms["front"]
    assert len(alarms) == N_FRAMES
    first_on = alarms.index(True)
    first_off = alarms.index(False, first_on)
    assert first_on == ENTER + RAISE_AFTER - 1, alarms  # raised within k frames of entering
    assert first_off == LEAVE + CLEAR_AFTER - 1, alarms  # cleared within m frames of leaving
    assert not any(alarms[first_off:])


def test_two_cameras_get_their_own_outputs(two_cameras, offline):
    client, _, _ = two_cameras
    front, left = drive_frame(100, False), drive_frame(101, True)
    small = drive_frame(102, False, h=48, w=80)
    client.send("front", image_msg(front, "f1"), wait_for=None)
    client.send("left", image_msg(left, "l1"))
    client.send("left", image_msg(small, "l2"))
    assert client.spin_until(lambda: ("front", "confidence", "f1") in client.received, 5)
    check_outputs(client, "front", "f1", *offline(front))
    check_outputs(client, "left", "l1", *offline(left))
    got = check_outputs(client, "left", "l2", *offline(small))
    assert (got["segmentation"].height, got["segmentation"].width) == (48, 80)
    assert not any(k[0] == "front" and k[2].startswith("l") for k in client.received)


def test_every_encoding_and_padded_rows_give_the_rgb8_segmentation(two_cameras, offline):
    import cv2

    client, _, _ = two_cameras
    rgb = drive_frame(7, True)
    gray = np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    for encoding in ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "rgb16", "bgra16"):
        reference = offline(gray if encoding.startswith("mono") else rgb)
        for pad in (0, 5):
            frame_id = f"{encoding}-{pad}"
            client.send("front", image_msg(rgb, frame_id, encoding, pad))
            check_outputs(client, "front", frame_id, *reference)


def test_colour_outputs_are_built_for_subscribers(two_cameras, offline):
    from dudes_ros.labels import colorize
    from dudes_ros.messages.outputs import heat_map

    client, _, _ = two_cameras
    rgb = drive_frame(3, False)
    client.send("front", image_msg(rgb, "colour"), wait_for="uncertainty/color")
    assert client.spin_until(
        lambda: ("front", "segmentation/color", "colour") in client.received, 3)
    labels = as_array(client.received[("front", "segmentation", "colour")])
    u = as_array(client.received[("front", "uncertainty", "colour")])
    seg_colour = client.received[("front", "segmentation/color", "colour")]
    assert seg_colour.encoding == "rgb8"
    np.testing.assert_array_equal(as_array(seg_colour), colorize(labels))
    heat = as_array(client.received[("front", "uncertainty/color", "colour")])
    np.testing.assert_array_equal(heat, heat_map(u))


def test_malformed_frames_are_rejected_counted_and_streaming_continues(two_cameras, offline):
    client, _, log = two_cameras
    good = drive_frame(9, False)
    bad = {
        "truncated_data": dict(data=b"\x00" * 100),
        "bad_step": dict(step=W * 3 - 1),
        "unknown_encoding": dict(encoding="yuv422_yuy2"),
        "empty": dict(height=0, width=0, step=0, data=b""),
        "too_large": dict(height=20000, width=20000, step=60000),
    }
    for reason, change in bad.items():
        msg = image_msg(good, f"bad-{reason}")
        for key, value in change.items():
            setattr(msg, key, value)
        client.send("front", msg, wait_for=None)
        client.spin_until(lambda: False, 0.3)
    # Bytes on the image topic that are no CDR Image at all (a raw publisher gone wrong).
    client.pubs["front"].publish(b"\x00\x01\x00\x00garbage")
    client.spin_until(lambda: False, 0.3)
    client.send("front", image_msg(good, "after-bad"))
    check_outputs(client, "front", "after-bad", *offline(good))
    assert not any(k[2].startswith("bad-") for k in client.received)
    counts = client.latest_counts()
    for reason in [*bad, "cdr"]:
        assert counts.get(f"rejected_{reason}") == "1", counts
    assert int(counts["frames_rejected"]) == len(bad) + 1
    text = log.read_text()
    assert "rejected frame (frame_id 'bad-too_large')" in text and "20000x20000" in text
    assert "step 383 is smaller than" in text
    assert "rejected a message that is not a CDR-encoded sensor_msgs/msg/Image" in text


def send_good_frames(client, offline, n: int, tag: str) -> None:
    """``n`` fresh frames, each checked against the offline predictor."""
    good = drive_frame(11, False)
    for i in range(n):
        client.send("front", image_msg(good, f"{tag}{i}"))
    check_outputs(client, "front", f"{tag}{n - 1}", *offline(good))


def test_stale_frames_are_dropped_counted_logged_and_raise_warn(two_cameras, offline):
    from dudes_ros.ros.diagnostics import LEVEL_WINDOW

    client, _, log = two_cameras
    send_good_frames(client, offline, LEVEL_WINDOW, "fresh")
    status = client.latest_status()
    assert status.level == DiagnosticStatus.OK and status.message == "streaming"
    before = int(client.latest_counts()["frames_dropped_stale"])
    n_stale = LEVEL_WINDOW // 2 + 5
    for i in range(n_stale):
        msg = image_msg(drive_frame(1, False), f"stale{i}")
        now = client.node.get_clock().now().to_msg()
        msg.header.stamp.sec = now.sec - 60
        msg.header.stamp.nanosec = now.nanosec
        client.diagnostics.clear()
        client.pubs["front"].publish(msg)

        def counted(n=before + i + 1) -> bool:  # one at a time: none is superseded
            return any({kv.key: kv.value for kv in d.values}["frames_dropped_stale"] == str(n)
                       for d in client.diagnostics)
        assert client.spin_until(counted, 10), f"stale{i} not counted"
    status = client.latest_status()
    counts = {kv.key: kv.value for kv in status.values}
    assert int(counts["frames_dropped_stale"]) == before + n_stale
    assert int(counts["recent_dropped_stale"]) == n_stale
    assert status.level == DiagnosticStatus.WARN
    assert f"{n_stale} of the last {LEVEL_WINDOW} frames dropped as stale" in status.message
    assert "max_input_age 5.0 s" in status.message
    assert not any(k[2].startswith("stale") for k in client.received)
    text = log.read_text()
    line = next(x for x in text.splitlines() if "dropped a frame whose header stamp" in x)
    assert "WARN" in line and "older than max_input_age 5.0 s" in line, line
    age = float(line.split("header stamp is ")[1].split(" s old")[0])
    assert 60.0 <= age < 75.0, line
    assert float(counts["inference_p50_ms"]) > 0 and "onnxruntime" in counts["backend"]
    assert counts["outputs_published_via"] == counts["inputs_taken_via"] == "rcl"
    send_good_frames(client, offline, LEVEL_WINDOW, "recovered")
    status = client.latest_status()
    assert status.level == DiagnosticStatus.OK, status.message
    assert {kv.key: kv.value for kv in status.values}["recent_dropped_stale"] == "0"


def test_diagnostics_level_returns_to_ok_after_a_malformed_frame(two_cameras, offline):
    from dudes_ros.ros.diagnostics import LEVEL_WINDOW

    client, _, _ = two_cameras
    send_good_frames(client, offline, 3, "before-bad")
    msg = image_msg(drive_frame(2, False), "bad-again")
    msg.encoding = "yuv422_yuy2"
    client.send("front", msg, wait_for=None)
    client.spin_until(lambda: False, 0.3)
    status = client.latest_status()
    rejected = int({kv.key: kv.value for kv in status.values}["frames_rejected"])
    assert status.level == DiagnosticStatus.WARN and "1 rejected" in status.message
    send_good_frames(client, offline, LEVEL_WINDOW - 1, "good")
    status = client.latest_status()  # the bad frame is still among the last LEVEL_WINDOW
    assert status.level == DiagnosticStatus.WARN, status.message
    send_good_frames(client, offline, 1, "last")
    status = client.latest_status()
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == DiagnosticStatus.OK and status.message == "streaming", values
    assert values["frames_rejected"] == str(rejected)  # the total is kept
    assert values["recent_frames"] == str(LEVEL_WINDOW) and values["recent_rejected"] == "0"
    assert 0 < float(values["node_overhead_p50_ms"]) < float(values["node_latency_p50_ms"])
    assert 0 <= float(values["header_age_p50_ms"]) < 1000


def test_runtime_parameter_changes(two_cameras, offline, drive):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    client, _, _ = two_cameras
    service = client.node.create_client(SetParameters, "/dudes_node/set_parameters")
    assert service.wait_for_service(timeout_sec=10)

    def set_many(values):
        parameters = []
        for name, value in values.items():
            kind = (ParameterType.PARAMETER_STRING if isinstance(value, str)
                    else ParameterType.PARAMETER_DOUBLE)
            pv = (ParameterValue(type=kind, string_value=value) if isinstance(value, str)
                  else ParameterValue(type=kind, double_value=value))
            parameters.append(Parameter(name=name, value=pv))
        future = service.call_async(SetParameters.Request(parameters=parameters))
        assert client.spin_until(future.done, 10)
        return future.result().results

    def set_one(name, value):
        return set_many({name: value})[0]

    refused = set_one("backend", "torch")
    assert not refused.successful and "cannot change while the node is configured" in (
        refused.reason)
    bad = set_one("ood.frame_threshold", -0.2)
    assert not bad.successful and "ood.frame_threshold: invalid value -0.2" in bad.reason
    assert set_one("max_input_age", 4.0).successful
    # both thresholds in one call: the next frame is scored and reported with both
    _, _, pixel_threshold, frame_threshold = drive
    assert all(r.successful for r in set_many({"ood.pixel_threshold": 0.25,
                                               "ood.frame_threshold": 0.75}))
    rgb = drive_frame(21, True)
    client.send("front", image_msg(rgb, "new-thresholds"))
    got = check_outputs(client, "front", "new-thresholds", *offline(rgb))
    values = {kv.key: kv.value for kv in got["ood"].status[0].values}
    u = offline(rgb)[1]
    assert (values["pixel_threshold"], values["threshold"]) == ("0.250000", "0.750000")
    assert float(values["score"]) == pytest.approx(np.mean(u > 0.25), abs=1e-6)
    assert all(r.successful for r in set_many({"ood.pixel_threshold": pixel_threshold,
                                               "ood.frame_threshold": frame_threshold}))


def test_compressed_single_camera_node_and_garbage_jpeg(ros_context, model, offline,
                                                        tmp_path):
    import os

    import cv2

    log = tmp_path / "node.log"
    process = start_node(dict(os.environ), log, namespace="packed", model=model, device="cpu",
                         transport="compressed", ood__pixel_threshold=0.5,
                         ood__frame_threshold=0.1, diagnostics_period=0.2)
    client = Client([""], transport="compressed", namespace="packed")
    try:
        client.wait_ready(process, log)
        rgb = drive_frame(5, False)
        for frame_id in ("png-before", "garbage", "png-after"):
            if frame_id == "garbage":  # an SOI marker, then noise
                msg = CompressedImage(format="jpeg", data=b"\xff\xd8\xff\xe0" + b"\x13" * 300)
            else:
                data = cv2.imencode(".png", rgb[..., ::-1])[1].tobytes()
                msg = CompressedImage(format="png", data=data)
            msg.header.frame_id = frame_id
            client.send("", msg, wait_for=None if frame_id == "garbage" else "confidence")
            client.spin_until(lambda: False, 0.3)
            if frame_id != "garbage":
                check_outputs(client, "", frame_id, *offline(rgb))
        counts = client.latest_counts()
        assert counts.get("rejected_undecodable") == "1", counts
        assert "rejected frame (frame_id 'garbage')" in log.read_text()
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=20)


def test_diagnostics_while_unconfigured_and_after_a_failed_configure(ros_context, model,
                                                                      tmp_path):
    """autostart off: /diagnostics reports the unconfigured node (WARN); a configure that
    fails turns it to ERROR with the reason; a good configure clears it."""
    import os

    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    log = tmp_path / "node.log"
    process = start_node(dict(os.environ), log, namespace="managed", autostart="false",
                         model="missing/student.onnx", diagnostics_period=0.2,
                         ood__pixel_threshold=0.5, ood__frame_threshold=0.1)
    client = Client([], namespace="managed")
    try:
        assert client.spin_until(lambda: client.diagnostics or process.poll() is not None, 60)
        status = client.latest_status()
        values = {kv.key: kv.value for kv in status.values}
        assert (status.level, status.message, values["state"]) == (
            DiagnosticStatus.WARN, "unconfigured", "unconfigured")
        assert "error" not in values

        def call(service_type, name, request):
            service = client.node.create_client(service_type, name)
            assert service.wait_for_service(timeout_sec=10)
            future = service.call_async(request)
            assert client.spin_until(future.done, 30)
            return future.result()

        configure = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE))
        assert not call(ChangeState, "/managed/dudes_node/change_state", configure).success
        status = client.latest_status()
        values = {kv.key: kv.value for kv in status.values}
        assert status.level == DiagnosticStatus.ERROR and values["state"] == "unconfigured"
        for text in (status.message, values["error"]):
            assert text.startswith("configure failed: parameter model") and (
                "missing/student.onnx" in text and "does not exist" in text), text
        good = Parameter(name="model", value=ParameterValue(
            type=ParameterType.PARAMETER_STRING, string_value=str(model)))
        assert call(SetParameters, "/managed/dudes_node/set_parameters",
                    SetParameters.Request(parameters=[good])).results[0].successful
        assert call(ChangeState, "/managed/dudes_node/change_state", configure).success
        status = client.latest_status()
        values = {kv.key: kv.value for kv in status.values}
        assert (status.level, status.message, values["state"]) == (
            DiagnosticStatus.WARN, "inactive", "inactive")
        assert "error" not in values and values["backend"] in ("onnxruntime", "torch")
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.parametrize(("parameters", "words"), [
    ({"backend": "warp"}, ["backend", "'warp'"]),
    ({"ood__pixel_threshold": -0.5}, ["ood.pixel_threshold", "-0.5"]),
    ({"model": "missing/student.onnx"}, ["model", "missing/student.onnx", "does not exist"]),
])
def test_invalid_parameters_fail_at_configure(parameters, words, model, tmp_path):
    import os

    log = tmp_path / "node.log"
    parameters = {"model": model, **parameters}
    process = start_node(dict(os.environ), log, **parameters)
    assert process.wait(timeout=60) == 1
    text = log.read_text()
    assert "configure failed" in text and all(w in text for w in words), text
