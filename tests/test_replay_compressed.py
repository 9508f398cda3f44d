"""The compressed replay of docs/bags.md, as a new user runs it on their own bag: 1280x720 JPEG
``CompressedImage`` frames and ``CameraInfo``, the Fast DDS profile exported under both of
its variable names, ``dudes_node`` wired image_transport's way (base topic remapped,
``transport:=compressed``) and ``dudes replay BAG``. Every frame comes back on
``segmentation`` with its (restamped) input stamp and the offline predictor's labels."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from dudes_ros.bag.replay import Restamp
from tests.conftest import FASTDDS_PROFILE
from tests.helpers.bags import KILTED, T0_NS, pattern
from tests.helpers.processes import stop

pytestmark = pytest.mark.ros
SIZE = (720, 1280)  # the camera
N_FRAMES = 10
PERIOD_NS = 100_000_000  # recorded at 10 Hz
# The node runs the model on the CPU here: about 250 ms a 720p frame on the 2-core test VM,
# with other work beside it. At a tenth of the recorded rate every frame has a second, so none
# is superseded by the next (a GPU keeps up at the recorded rate).
RATE = 0.1
IMAGE_TOPIC = "/camera/image_raw/compressed"
NODE_LINE = "dudes_node --ros-args -p transport:=compressed -r image:=/camera/image_raw"
PROFILE_LINES = ("export FASTDDS_DEFAULT_PROFILES_FILE=$(python -c \"from dudes_ros.resources "
                 "import config_path; print(config_path('fastdds_large_images.xml'))\")",
                 "export FASTRTPS_DEFAULT_PROFILES_FILE=$FASTDDS_DEFAULT_PROFILES_FILE")


def write_jpeg_bag(path: Path) -> dict[int, tuple[str, np.ndarray]]:
    """A rosbag2 (MCAP) of ``N_FRAMES`` JPEG frames on ``IMAGE_TOPIC`` with a CameraInfo each,
    as a camera driver with image_transport records them; returns ``{recorded header stamp
    ns: (frame_id, RGB the JPEG decodes to)}``."""
    types = KILTED.types
    frames = {}
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        image = writer.add_connection(IMAGE_TOPIC, "sensor_msgs/msg/CompressedImage",
                                      typestore=KILTED)
        info = writer.add_connection("/camera/camera_info", "sensor_msgs/msg/CameraInfo",
                                     typestore=KILTED)
        for i in range(N_FRAMES):
            timestamp = T0_NS + i * PERIOD_NS
            sec, nanosec = divmod(timestamp, 10**9)
            header = types["std_msgs/msg/Header"](
                stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                frame_id="camera_optical_frame")
            ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(pattern(i, SIZE), cv2.COLOR_RGB2BGR))
            assert ok
            msg = types["sensor_msgs/msg/CompressedImage"](
                header=header, format="rgb8; jpeg compressed bgr8", data=jpeg.ravel())
            writer.write(image, timestamp,
                         KILTED.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage"))
            camera_info = types["sensor_msgs/msg/CameraInfo"](
                header=header, height=SIZE[0], width=SIZE[1], distortion_model="plumb_bob",
                d=np.zeros(5), k=np.array([900.0, 0, 640, 0, 900, 360, 0, 0, 1]),
                r=np.eye(3).ravel(), p=np.array([900.0, 0, 640, 0, 0, 900, 360, 0, 0, 0, 1, 0]),
                binning_x=0, binning_y=0,
                roi=types["sensor_msgs/msg/RegionOfInterest"](
                    x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
            writer.write(info, timestamp + 1000,
                         KILTED.serialize_cdr(camera_info, "sensor_msgs/msg/CameraInfo"))
            rgb = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            frames[timestamp] = ("camera_optical_frame", rgb)
    return frames


def stamp_map(output: str) -> Restamp:
    """The map ``dudes replay`` printed (one pass, rate ``RATE``)."""
    found = re.findall(r"published = (\d+) \+ \(recorded - (\d+)\) / ([\d.]+) ns", output)
    assert len(found) == 1, output
    published, recorded, rate = found[0]
    assert float(rate) == RATE, output
    return Restamp(int(recorded), int(published), RATE)


def test_readme_compressed_replay_answers_every_frame(tmp_path, ros_env):
    rclpy = pytest.importorskip("rclpy")
    pytest.importorskip("torch")
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from dudes_ros.inference.factory import create_predictor
    from tests.helpers.export_models import write_student

    recorded = write_jpeg_bag(tmp_path / "my_bag")
    _, model = write_student(tmp_path)
    env = {**ros_env, "PATH": f"{Path(sys.executable).parent}:{ros_env.get('PATH', '')}"}
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)  # docs/bags.md's lines set both names
    env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
    profile = "; ".join(PROFILE_LINES)
    node_line = (f"{NODE_LINE} -p model:={model} -p device:=cpu -p ood.pixel_threshold:=0.5 "
                 "-p ood.frame_threshold:=0.1")
    replay_line = f"dudes replay my_bag --rate {RATE}"
    log = tmp_path / "node.log"
    received: dict[int, tuple[str, np.ndarray]] = {}
    rclpy.init()
    node_process = replay = None
    try:
        listener = rclpy.create_node("compressed_replay_listener")

        def on_segmentation(msg):
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            labels = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width)
            received[stamp] = (msg.header.frame_id, labels.copy())

        segmentation = listener.create_subscription(
            Image, "/segmentation", on_segmentation,
            QoSProfile(depth=N_FRAMES, reliability=ReliabilityPolicy.RELIABLE))
        executor = SingleThreadedExecutor()
        executor.add_node(listener)

        def spin(seconds: float, until) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not until():
                executor.spin_once(timeout_sec=0.01)

        node_process = subprocess.Popen(["bash", "-c", f"{profile}; exec {node_line}"],
                                        cwd=tmp_path, env=env, stdout=log.open("w"),
                                        stderr=subprocess.STDOUT)
        spin(60, lambda: segmentation.get_publisher_count() > 0
             or node_process.poll() is not None)
        assert segmentation.get_publisher_count() > 0, log.read_text()
        environ = dict(line.split("=", 1) for line in Path(
            f"/proc/{node_process.pid}/environ").read_text().split("\0") if "=" in line)
        for name in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
            assert Path(environ[name]).samefile(FASTDDS_PROFILE), (name, environ.get(name))
        replay = subprocess.Popen(["bash", "-c", f"{profile}; {replay_line}"], cwd=tmp_path,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        spin(120, lambda: replay.poll() is not None)
        spin(10, lambda: len(received) == N_FRAMES)
        output = replay.communicate(timeout=10)[0]
        assert replay.returncode == 0, output
        assert f"published {2 * N_FRAMES} messages" in output, output
        listener.destroy_node()
    finally:
        rclpy.shutdown()
        stop(replay, node_process)
    text = log.read_text()
    assert ("input: /camera/image_raw/compressed (sensor_msgs/msg/CompressedImage); transport "
            "compressed, base topic image -> /camera/image_raw") in text, text
    published = stamp_map(output)
    expected = {published.published(stamp): frame for stamp, frame in recorded.items()}
    assert sorted(received) == sorted(expected), (
        f"{len(received)} of {N_FRAMES} frames answered", output, text)
    with create_predictor(model, backend="onnxruntime", device="cpu") as predictor:
        for stamp, (frame_id, rgb) in expected.items():
            assert received[stamp][0] == frame_id
            np.testing.assert_array_equal(received[stamp][1], predictor.predict(rgb[None])[0][0])
