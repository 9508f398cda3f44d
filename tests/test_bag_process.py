"""``dudes process-bag``: bags written by rosbags processed end to end with a tiny ONNX student.

Every output is checked against the same ONNX Runtime predictor run offline on the decoded
input frame, read back with rosbags and (for MCAP) with the mcap library.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from rosbags.highlevel import AnyReader

from dudes_ros.bag.process import (
    DEFAULT_OUTPUTS,
    SUMMARY_FILE,
    TIMELINE_FILE,
    ProcessOptions,
    process_bag,
)
from dudes_ros.bag.reader import BagError, BagReader, ImageTopic
from dudes_ros.bag.summary import alarm_intervals, format_bytes
from dudes_ros.cli import main as cli_main
from dudes_ros.export.onnx_export import export_onnx
from dudes_ros.inference.factory import create_predictor
from dudes_ros.inference.predictor import Predictor
from dudes_ros.model.config import ModelConfig
from dudes_ros.model.student import SegmentationNet
from dudes_ros.ood import Hysteresis
from dudes_ros.perception import OodConfig, confidence_image, scale_outputs
from tests.helpers.bags import KILTED, Camera, bag_writer, pattern, write_image_bag

N = 6  # frames per camera


@pytest.fixture(scope="module")
def student_onnx(tmp_path_factory) -> Path:
    """A tiny random-init student (resnet18, 16 decoder channels, 64x128) exported once."""
    torch.manual_seed(0)
    net = SegmentationNet(ModelConfig(decoder_channels=16, input_size=(64, 128))).eval()
    return export_onnx(net, tmp_path_factory.mktemp("model") / "student.onnx").onnx_path


@pytest.fixture(scope="module")
def predictor(student_onnx):
    with create_predictor(student_onnx, backend="onnxruntime", device="cpu") as p:
        yield p


@pytest.fixture(scope="module")
def ood(predictor) -> OodConfig:
    """Thresholds that make the alarm rise and clear on the test frames: the pixel threshold
    at the median u of one frame, the frame threshold between the frames' scores."""
    _, u = predictor.predict(np.stack([pattern(i, (64, 128)) for i in range(N)]))
    pixel = float(np.median(u[0]))
    scores = sorted(float(np.mean(u[i] > pixel)) for i in range(N))
    return OodConfig(pixel_threshold=pixel, frame_threshold=scores[N // 2 - 1],
                     raise_after=1, clear_after=1)


def read_back(path: Path) -> dict[str, list[tuple[int, object]]]:
    """``{topic: [(bag time, message)]}`` read with rosbags."""
    out: dict[str, list[tuple[int, object]]] = {}
    with AnyReader([path]) as reader:
        for connection, timestamp, raw in reader.messages():
            msg = reader.deserialize(raw, connection.msgtype)
            out.setdefault(connection.topic, []).append((timestamp, msg))
    return out


def image_array(msg) -> np.ndarray:
    dtype = np.float32 if msg.encoding == "32FC1" else np.uint8
    return np.frombuffer(msg.data.tobytes(), dtype=dtype).reshape(msg.height, msg.width)


def expected_alarms(predictor: Predictor, ood: OodConfig, frames) -> list[bool]:
    hysteresis = Hysteresis(ood.frame_threshold, ood.raise_after, ood.clear_after)
    return [hysteresis.update(float(np.mean(predictor.predict(f.rgb[None])[1][0]
                                            > ood.pixel_threshold))) for f in frames]


def check_outputs(out: dict, frames, namespace: str, predictor: Predictor,
                  ood: OodConfig) -> None:
    """Counts, stamps, bag times and content of one camera's outputs equal the offline run."""
    alarms = expected_alarms(predictor, ood, frames)
    for suffix in ("segmentation", "uncertainty", "confidence", "ood", "ood_alarm"):
        assert len(out[f"{namespace}/{suffix}"]) == len(frames), suffix
    for k, frame in enumerate(frames):
        labels, u = predictor.predict(frame.rgb[None])
        seg_t, seg = out[f"{namespace}/segmentation"][k]
        assert seg_t == frame.timestamp
        for suffix in ("segmentation", "uncertainty", "confidence", "ood"):
            header = out[f"{namespace}/{suffix}"][k][1].header
            assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == \
                (frame.sec, frame.nanosec, frame.frame_id)
        assert seg.encoding == "mono8" and seg.step == seg.width
        np.testing.assert_array_equal(image_array(seg), labels[0])
        unc = out[f"{namespace}/uncertainty"][k][1]
        assert unc.encoding == "32FC1" and unc.step == 4 * unc.width
        np.testing.assert_allclose(image_array(unc), u[0], rtol=0, atol=1e-6)
        np.testing.assert_array_equal(image_array(out[f"{namespace}/confidence"][k][1]),
                                      confidence_image(u[0]))
        status = out[f"{namespace}/ood"][k][1].status[0]
        values = {kv.key: kv.value for kv in status.values}
        score = float(np.mean(u[0] > ood.pixel_threshold))
        assert float(values["score"]) == pytest.approx(score, abs=1e-6)
        assert values["alarm"] == str(alarms[k]).lower()
        assert status.level == (2 if alarms[k] else 1 if score > ood.frame_threshold else 0)
        assert out[f"{namespace}/ood_alarm"][k][1].data is alarms[k]


def test_camera_namespace_from_topic():
    cases = {("/cam_front/image_raw", "sensor_msgs/msg/Image"): ("/cam_front", "cam_front"),
             ("/cam_front/image_raw/compressed", "sensor_msgs/msg/CompressedImage"):
                 ("/cam_front", "cam_front"),
             ("/car/left/image", "sensor_msgs/msg/Image"): ("/car/left", "car/left"),
             ("/image", "sensor_msgs/msg/Image"): ("", "camera")}
    for (topic, msgtype), (namespace, camera) in cases.items():
        image_topic = ImageTopic(topic, msgtype, 1)
        assert (image_topic.namespace, image_topic.camera) == (namespace, camera)


def test_sqlite3_two_cameras_raw_and_compressed(tmp_path, predictor, ood):
    cameras = [Camera("/cam_front/image_raw", "rgb8"),
               Camera("/cam_rear/image_raw/compressed", "png", size=(48, 80))]
    frames = write_image_bag(tmp_path / "in", cameras, N, storage="sqlite3")
    summary = process_bag(tmp_path / "in", tmp_path / "out", predictor, ood,
                          ProcessOptions(progress=False,
                                         outputs=(*DEFAULT_OUTPUTS, "segmentation/color")))
    out = read_back(tmp_path / "out")
    assert set(out) == {f"/cam_{c}/{s}" for c in ("front", "rear") for s in
                        ("segmentation", "segmentation/color", "uncertainty", "confidence",
                         "ood", "ood_alarm", "ood/mask", "ood/regions")}  # no ground: no points
    for camera, namespace in zip(cameras, ("/cam_front", "/cam_rear"), strict=True):
        mine = [f for f in frames if f.topic == camera.topic]
        check_outputs(out, mine, namespace, predictor, ood)
    color = out["/cam_front/segmentation/color"][0][1]
    assert color.encoding == "rgb8" and (color.height, color.width) == (64, 128)
    assert BagReader(tmp_path / "out").format == "sqlite3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]  # no debris
    # summary.json inside OUT: counts, alarm intervals in bag time, the timeline PNG
    saved = json.loads((tmp_path / "out" / SUMMARY_FILE).read_text())
    assert saved == json.loads(json.dumps(summary))
    assert saved["frames"] == 2 * N and saved["rejected"] == 0
    assert saved["topics"][cameras[1].topic]["frames"] == N
    front = [f for f in frames if f.topic == cameras[0].topic]
    intervals = alarm_intervals([f.timestamp for f in front],
                                expected_alarms(predictor, ood, front))
    assert intervals, "the thresholds were chosen so that the alarm rises"
    assert [(i["start_ns"], i["end_ns"], i["open"])
            for i in saved["alarm_intervals"][cameras[0].topic]] == intervals
    assert saved["latency_ms"]["p50"] > 0 and saved["inference_ms"]["p95"] > 0
    assert 0.0 <= saved["outside_inference_share"] < 1.0
    import matplotlib.image

    png = matplotlib.image.imread(tmp_path / "out" / TIMELINE_FILE)
    assert png.ndim == 3 and png.shape[0] > 100 and png.shape[1] > 100


def test_mcap_read_back_with_mcap_library_and_inputs(tmp_path, predictor, ood):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    camera = Camera("/cam/image_raw", "bgr8")
    frames = write_image_bag(tmp_path / "in", [camera], N, storage="mcap")
    process_bag(tmp_path / "in", tmp_path / "out", predictor, ood,
                ProcessOptions(progress=False, include_inputs=True))
    mcap_files = list((tmp_path / "out").glob("*.mcap"))
    assert [p.name for p in mcap_files] == ["out.mcap"]
    decoded: dict[str, list] = {}
    with mcap_files[0].open("rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        for _, channel, message, ros_msg in reader.iter_decoded_messages():
            decoded.setdefault(channel.topic, []).append((message.log_time, ros_msg))
    assert {t: len(v) for t, v in decoded.items()} == {
        t: N for t in ("/cam/image_raw", "/cam/segmentation", "/cam/uncertainty",
                       "/cam/confidence", "/cam/ood", "/cam/ood_alarm", "/cam/ood/mask",
                       "/cam/ood/regions")}
    for frame, (log_time, msg) in zip(frames, decoded["/cam/segmentation"], strict=True):
        assert log_time == frame.timestamp
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (frame.sec, frame.nanosec)
        labels = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width)
        np.testing.assert_array_equal(labels, predictor.predict(frame.rgb[None])[0][0])
    with AnyReader([tmp_path / "in"]) as src, AnyReader([tmp_path / "out"]) as dst:
        raw_in = [bytes(raw) for _, _, raw in src.messages(
            [c for c in src.connections if c.topic == camera.topic])]
        raw_out = [bytes(raw) for _, _, raw in dst.messages(
            [c for c in dst.connections if c.topic == camera.topic])]
    assert raw_out == raw_in  # inputs copied byte for byte
    check_outputs(read_back(tmp_path / "out"), frames, "/cam", predictor, ood)


def test_ros1_bag_to_mcap(tmp_path, predictor, ood):
    cameras = [Camera("/stereo/left/image_raw", "rgb8"), Camera("/stereo/right/image", "mono8")]
    frames = write_image_bag(tmp_path / "in.bag", cameras, 4, storage="ros1")
    summary = process_bag(tmp_path / "in.bag", tmp_path / "out", predictor, ood,
                          ProcessOptions(progress=False, include_inputs=True))
    assert summary["input_format"] == "ros1" and summary["output_format"] == "mcap"
    out = read_back(tmp_path / "out")
    check_outputs(out, [f for f in frames if f.topic == cameras[0].topic], "/stereo/left",
                  predictor, ood)
    check_outputs(out, [f for f in frames if f.topic == cameras[1].topic], "/stereo/right",
                  predictor, ood)
    copied = out["/stereo/left/image_raw"][0][1]  # converted to a ROS 2 Image (no seq)
    assert not hasattr(copied.header, "seq") and copied.header.frame_id == "stereo_0"
    np.testing.assert_array_equal(copied.data.reshape(64, 128, 3), frames[0].rgb)


def test_mcap_input_to_sqlite3_and_rejected_frames(tmp_path, predictor, ood):
    from rosbags.rosbag2 import StoragePlugin, Writer

    camera = Camera("/cam/image_raw", "rgb8")
    frames = write_image_bag(tmp_path / "good", [camera], 3, storage="mcap")
    types = KILTED.types
    bad = [types["sensor_msgs/msg/Image"](header=types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=5, nanosec=0), frame_id="x"),
        height=4, width=4, encoding=encoding, is_bigendian=0, step=4 * 3,
        data=np.zeros(n, np.uint8)) for encoding, n in (("bayer_rggb8", 48), ("rgb8", 10))]
    with AnyReader([tmp_path / "good"]) as reader, \
            Writer(tmp_path / "in", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection(camera.topic, "sensor_msgs/msg/Image", typestore=KILTED)
        for connection, timestamp, raw in reader.messages():
            if connection.topic == camera.topic:
                writer.write(conn, timestamp, raw)
        for k, msg in enumerate(bad):
            writer.write(conn, frames[-1].timestamp + k + 1,
                         KILTED.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    summary = process_bag(tmp_path / "in", tmp_path / "out", predictor, ood,
                          ProcessOptions(progress=False, storage="sqlite3"))
    assert summary["output_format"] == "sqlite3"
    assert summary["topics"][camera.topic]["rejected"] == {"unknown_encoding": 1,
                                                          "truncated_data": 1}
    assert summary["topics"][camera.topic]["messages"] == 5
    assert "bayer_rggb8" in summary["topics"][camera.topic]["rejection_examples"][
        "unknown_encoding"]
    check_outputs(read_back(tmp_path / "out"), frames, "/cam", predictor, ood)


class FailingPredictor(Predictor):
    """Delegates to ``inner`` and raises ``error`` on call number ``at`` (1-based)."""

    backend = "failing"

    def __init__(self, inner: Predictor, at: int, error: BaseException) -> None:
        self.inner, self.at, self.error, self.calls = inner, at, error, 0

    def predict(self, images):
        self.calls += 1
        if self.calls == self.at:
            raise self.error
        return self.inner.predict(images)


@pytest.mark.parametrize("error", [RuntimeError("injected"), KeyboardInterrupt()])
@pytest.mark.parametrize("existing", [False, True])
def test_failure_mid_way_leaves_nothing(tmp_path, predictor, ood, error, existing):
    write_image_bag(tmp_path / "in", [Camera("/cam/image_raw")], N, storage="mcap")
    if existing:
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "keep.txt").write_text("previous run")
    failing = FailingPredictor(predictor, at=3, error=error)
    with pytest.raises(type(error)):
        process_bag(tmp_path / "in", tmp_path / "out", failing, ood,
                    ProcessOptions(progress=False, overwrite=existing))
    assert failing.calls == 3
    expected = ["in", "out"] if existing else ["in"]
    assert sorted(p.name for p in tmp_path.iterdir()) == expected
    if existing:
        assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_existing_output_refused_then_overwritten(tmp_path, predictor, ood):
    write_image_bag(tmp_path / "in", [Camera("/cam/image_raw")], 2, storage="mcap")
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError, match="--overwrite"):
        process_bag(tmp_path / "in", tmp_path / "out", predictor, ood,
                    ProcessOptions(progress=False))
    process_bag(tmp_path / "in", tmp_path / "out", predictor, ood,
                ProcessOptions(progress=False, overwrite=True))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "metadata.yaml", TIMELINE_FILE, "out.mcap", SUMMARY_FILE]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("storage", ["sqlite3", "mcap", "ros1"])
def test_truncated_or_corrupted_bags_name_the_file(tmp_path, predictor, ood, storage):
    name = "in.bag" if storage == "ros1" else "in"
    write_image_bag(tmp_path / name, [Camera("/cam/image_raw")], N, storage=storage)
    data_file = tmp_path / name if storage == "ros1" else next(
        p for p in (tmp_path / name).iterdir() if p.suffix in (".db3", ".mcap"))
    _truncate(data_file, 0.5)
    with pytest.raises(BagError, match=str(tmp_path / name).replace("\\", "\\\\")) as info:
        process_bag(tmp_path / name, tmp_path / "out", predictor, ood,
                    ProcessOptions(progress=False))
    assert "corrupted" in str(info.value) or "truncated" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_no_image_topic_and_unknown_types(tmp_path, predictor, ood):
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg("uint8[] payload", "my_msgs/msg/Blob"))
    with Writer(tmp_path / "in", version=9) as writer:
        conn = writer.add_connection("/blob", "my_msgs/msg/Blob", typestore=store)
        writer.write(conn, 1, store.serialize_cdr(
            store.types["my_msgs/msg/Blob"](payload=np.zeros(3, np.uint8)), "my_msgs/msg/Blob"))
    with pytest.raises(BagError, match=r"no sensor_msgs/msg/Image .*/blob \(my_msgs/msg/Blob\)"):
        process_bag(tmp_path / "in", tmp_path / "out", predictor, ood,
                    ProcessOptions(progress=False))
    with pytest.raises(BagError, match=r"'/blob' has message type 'my_msgs/msg/Blob'"):
        process_bag(tmp_path / "in", tmp_path / "out", predictor, ood,
                    ProcessOptions(progress=False, topics=("/blob",)))
    with pytest.raises(BagError, match=r"'/nope' is not in the bag"):
        process_bag(tmp_path / "in", tmp_path / "out", predictor, ood,
                    ProcessOptions(progress=False, topics=("/nope",)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    with pytest.raises(BagError, match="no such bag"):
        BagReader(tmp_path / "missing")


def test_cli_process_bag(tmp_path, student_onnx, capsys):
    write_image_bag(tmp_path / "in", [Camera("/cam/image_raw")], 3, storage="sqlite3")
    args = ["process-bag", str(tmp_path / "in"), str(tmp_path / "out"), "--model",
            str(student_onnx), "--backend", "onnxruntime", "--device", "cpu", "--no-progress",
            "--pixel-threshold", "0.5", "--frame-threshold", "0.2"]
    assert cli_main(args) == 0
    printed = capsys.readouterr().out
    assert "processed 3 frames, rejected 0" in printed and "/cam/image_raw [cam]" in printed
    summary = json.loads((tmp_path / "out" / SUMMARY_FILE).read_text())
    assert summary["ood"]["pixel_threshold"] == 0.5 and summary["output_format"] == "sqlite3"
    assert summary["model"]["backend"] == "onnxruntime"
    assert cli_main(args) == 2  # OUT exists now
    assert "--overwrite" in capsys.readouterr().err
    # the manifest of an uncalibrated model has no thresholds: they must be given
    assert cli_main(args[:-4] + ["--overwrite"]) == 2
    assert "pixel_threshold" in capsys.readouterr().err
    with sqlite3.connect(next((tmp_path / "out").glob("*.db3"))) as db:
        assert db.execute("select count(*) from messages").fetchone()[0] == 3 * 7


@pytest.mark.ros
def test_cli_on_the_demo_bag_processes_the_camera_only_with_the_bundled_model(
        demo_bag, tmp_path, capsys):
    """No --topics, no --model: the demo's bag holds the camera and the node's outputs (all
    sensor_msgs/Image); the outputs are named and skipped before the model loads, the camera
    is processed by the bundled student, frame for frame with the recorded stamps."""
    from dudes_ros.resources import bundled_model
    from tests.helpers.demo_bag import FRAMES, IMAGE_TOPIC

    assert cli_main(["process-bag", str(demo_bag), str(tmp_path / "out"), "--no-progress",
                     "--backend", "onnxruntime", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    skipped = "/dudes_demo/confidence, /dudes_demo/segmentation, /dudes_demo/uncertainty"
    assert f"skipping 3 output topic(s) of dudes_ros: {skipped}" in printed
    assert f"processing {IMAGE_TOPIC}\n" in printed
    summary = json.loads((tmp_path / "out" / SUMMARY_FILE).read_text())
    assert list(summary["topics"]) == [IMAGE_TOPIC] and summary["frames"] == FRAMES
    assert Path(summary["model"]["model"]) == bundled_model()
    out = read_back(tmp_path / "out")
    assert set(out) == {f"/dudes_demo/{s}" for s in ("segmentation", "uncertainty",
                                                     "confidence", "ood", "ood_alarm",
                                                     "ood/mask", "ood/regions")}
    with AnyReader([demo_bag]) as reader:
        stamps = [reader.deserialize(raw, c.msgtype).header.stamp for c, _, raw in
                  reader.messages([c for c in reader.connections if c.topic == IMAGE_TOPIC])]
    assert [(m.header.stamp.sec, m.header.stamp.nanosec)
            for _, m in out["/dudes_demo/segmentation"]] == [(s.sec, s.nanosec) for s in stamps]


def test_cli_chooses_topics_before_the_model_loads(tmp_path, student_onnx, monkeypatch,
                                                   capsys):
    """A bag of nothing but this package's outputs: refused, naming them, with no model
    loaded; with --topics an output topic can still be processed."""
    import dudes_ros.inference.factory as factory

    write_image_bag(tmp_path / "in", [Camera("/cam/segmentation", "mono8"),
                                      Camera("/cam/uncertainty/color")], 2, storage="mcap")
    loaded = []
    real = factory.create_predictor
    monkeypatch.setattr(factory, "create_predictor",
                        lambda *a, **k: loaded.append(a) or real(*a, **k))
    args = ["process-bag", str(tmp_path / "in"), str(tmp_path / "out"), "--model",
            str(student_onnx), "--no-progress", "--pixel-threshold", "0.5",
            "--frame-threshold", "0.2"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "every image topic is an output of dudes_ros" in err and "--topics" in err
    assert "'/cam/segmentation', '/cam/uncertainty/color'" in err and loaded == []
    assert cli_main([*args, "--topics", "/cam/segmentation"]) == 0
    assert "processing /cam/segmentation\n" in capsys.readouterr().out and len(loaded) == 1


def test_alarm_intervals_close_on_the_first_cleared_frame_and_stay_open_at_the_end():
    from dudes_ros.bag.summary import alarm_intervals

    times = [10, 20, 30, 40, 50, 60]
    assert alarm_intervals(times, [False, True, True, False, True, True]) == [
        (20, 40, False), (50, 60, True)]
    assert alarm_intervals(times, [False] * 6) == []


def raw_sizes(path: Path) -> dict[str, list[int]]:
    """``{topic: [serialized bytes of each message]}`` as stored in a bag."""
    sizes: dict[str, list[int]] = {}
    with AnyReader([path]) as reader:
        for connection, _, raw in reader.messages():
            sizes.setdefault(connection.topic, []).append(len(raw))
    return sizes


def test_outputs_and_output_scale_choose_what_is_written_and_the_report_measures_it(
        tmp_path, predictor, ood):
    frames = write_image_bag(tmp_path / "in", [Camera("/cam/image_raw")], N, storage="mcap")
    options = ProcessOptions(progress=False, outputs=("ood_alarm", "segmentation"),
                             output_scale=0.5)
    summary = process_bag(tmp_path / "in", tmp_path / "out", predictor, ood, options)
    out = read_back(tmp_path / "out")
    assert set(out) == {"/cam/segmentation", "/cam/ood_alarm"}
    assert summary["outputs"] == ["segmentation", "ood_alarm"]
    assert summary["output_scale"] == 0.5
    alarms = expected_alarms(predictor, ood, frames)
    for k, frame in enumerate(frames):
        labels, u = predictor.predict(frame.rgb[None])
        seg = out["/cam/segmentation"][k][1]
        assert (seg.height, seg.width) == (32, 64)
        np.testing.assert_array_equal(image_array(seg), scale_outputs(labels[0], u[0], 0.5)[0])
        # the OOD score and alarm are still those of the full-size uncertainty
        assert out["/cam/ood_alarm"][k][1].data is alarms[k]
    stored = raw_sizes(tmp_path / "out")
    size = summary["size"]
    assert size["per_output_bytes_per_frame"] == {
        "segmentation": sum(stored["/cam/segmentation"]) / N,
        "ood_alarm": sum(stored["/cam/ood_alarm"]) / N}
    assert size["output_bytes"] == sum(map(sum, stored.values()))
    assert size["output_bytes_per_frame"] == round(size["output_bytes"] / N, 1)
    assert size["copied_input_bytes"] == 0
    bag_files = [p for p in (tmp_path / "out").iterdir()
                 if p.name not in (SUMMARY_FILE, TIMELINE_FILE)]
    assert size["bag_bytes_on_disk"] == sum(p.stat().st_size for p in bag_files)


def test_format_bytes():
    assert [format_bytes(n) for n in (5_530_000, 1234, 412)] == ["5.53 MB", "1.2 kB", "412 B"]


def test_default_outputs_size_per_frame_of_a_720p_camera():
    """The --outputs help quotes these sizes: mono8 = H*W bytes, 32FC1 = 4*H*W, rgb8 3*H*W."""
    h, w = 720, 1280
    assert (h * w / 1e6, 4 * h * w / 1e6, 3 * h * w / 1e6) == (0.9216, 3.6864, 2.7648)


def write_camera_bag(path: Path, storage: str) -> dict[str, list[bytes]]:
    """An image topic with its camera_info, a camera_info of another namespace, /tf_static
    (latched) and /tf; returns the serialized bytes written per topic."""
    from rosbags.interfaces import QosDurability
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    from dudes_ros.bag.process import LATCHED
    from tests.helpers.bags import image_message

    ros1 = storage == "ros1"
    store = get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_KILTED)
    if ros1:  # rosbags' Noetic store lacks tf2_msgs
        store.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms",
                                          "tf2_msgs/msg/TFMessage"))
    types = store.types
    serialize = store.serialize_ros1 if ros1 else store.serialize_cdr
    header_fields = {"seq": 0} if ros1 else {}

    def header(i: int):
        return types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=i, nanosec=0), frame_id="cam",
            **header_fields)

    def camera_info(i: int):
        fields = {"d": np.zeros(5), "k": np.eye(3).ravel(), "r": np.eye(3).ravel(),
                  "p": np.zeros(12)}
        if ros1:  # ROS 1 names its matrices in capitals
            fields = {key.upper(): value for key, value in fields.items()}
        roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0,
                                                         width=0, do_rectify=False)
        return types["sensor_msgs/msg/CameraInfo"](
            header=header(i), height=64, width=128, distortion_model="plumb_bob",
            binning_x=0, binning_y=0, roi=roi, **fields)

    def transforms(i: int):
        vec = types["geometry_msgs/msg/Vector3"](x=1.0, y=2.0, z=3.0)
        rot = types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0)
        stamped = types["geometry_msgs/msg/TransformStamped"](
            header=header(i), child_frame_id="cam",
            transform=types["geometry_msgs/msg/Transform"](translation=vec, rotation=rot))
        return types["tf2_msgs/msg/TFMessage"](transforms=[stamped])

    written: dict[str, list[bytes]] = {}
    with bag_writer(path, storage) as writer:
        def add(topic: str, msgtype: str, latched: bool = False):
            if ros1:
                return writer.add_connection(topic, msgtype, typestore=store,
                                             latching=int(latched))
            return writer.add_connection(topic, msgtype, typestore=store,
                                         offered_qos_profiles=LATCHED if latched else ())

        def put(connection, timestamp: int, msgtype: str, msg) -> None:
            data = serialize(msg, msgtype)
            writer.write(connection, timestamp, data)
            written.setdefault(connection.topic, []).append(bytes(data))

        conns = {"/tf_static": add("/tf_static", "tf2_msgs/msg/TFMessage", latched=True),
                 "/tf": add("/tf", "tf2_msgs/msg/TFMessage"),
                 "/cam/image_raw": add("/cam/image_raw", "sensor_msgs/msg/Image"),
                 "/cam/camera_info": add("/cam/camera_info", "sensor_msgs/msg/CameraInfo"),
                 "/other/camera_info": add("/other/camera_info", "sensor_msgs/msg/CameraInfo")}
        put(conns["/tf_static"], 1, "tf2_msgs/msg/TFMessage", transforms(0))
        for i in range(3):
            t = 10 + i * 100
            put(conns["/tf"], t, "tf2_msgs/msg/TFMessage", transforms(i))
            msgtype, image = image_message(store, Camera("/cam/image_raw"),
                                           pattern(i, (64, 128)), header(i))
            put(conns["/cam/image_raw"], t + 1, msgtype, image)
            put(conns["/cam/camera_info"], t + 2, "sensor_msgs/msg/CameraInfo",
                camera_info(i))
            put(conns["/other/camera_info"], t + 3, "sensor_msgs/msg/CameraInfo",
                camera_info(i))
    assert QosDurability.TRANSIENT_LOCAL == LATCHED[0].durability
    return written


@pytest.mark.parametrize("storage", ["mcap", "ros1"])
def test_include_inputs_copies_camera_info_beside_the_images_and_tf_static(
        tmp_path, predictor, ood, storage):
    from rosbags.interfaces import QosDurability

    source = tmp_path / ("in.bag" if storage == "ros1" else "in")
    written = write_camera_bag(source, storage)
    summary = process_bag(source, tmp_path / "out", predictor, ood,
                          ProcessOptions(progress=False, include_inputs=True))
    assert summary["copied_inputs"] == ["/cam/camera_info", "/cam/image_raw", "/tf_static"]
    out = read_back(tmp_path / "out")
    assert "/other/camera_info" not in out and "/tf" not in out
    info = [m for _, m in out["/cam/camera_info"]]
    assert [(m.header.stamp.sec, m.width, m.height, m.distortion_model) for m in info] == [
        (i, 128, 64, "plumb_bob") for i in range(3)]
    np.testing.assert_array_equal(info[0].k, np.eye(3).ravel())
    (t, tf), = out["/tf_static"]
    assert t == 1 and tf.transforms[0].transform.translation.z == 3.0
    with AnyReader([tmp_path / "out"]) as reader:
        latched = [c for c in reader.connections if c.topic == "/tf_static"][0]
        assert latched.ext.offered_qos_profiles[0].durability == QosDurability.TRANSIENT_LOCAL
    stored = raw_sizes(tmp_path / "out")
    if storage != "ros1":  # ROS 2 input is copied byte for byte
        for topic in ("/cam/camera_info", "/cam/image_raw", "/tf_static"):
            assert stored[topic] == [len(b) for b in written[topic]]
    copied = sum(sum(stored[t]) for t in summary["copied_inputs"])
    assert summary["size"]["copied_input_bytes"] == copied


def test_help_describes_the_camera_namespace_the_tool_uses(capsys):
    with pytest.raises(SystemExit):
        cli_main(["process-bag", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ("/camera/image_raw and /camera/image_raw/compressed both write "
            "/camera/segmentation") in text
    assert "the topic without its last name" not in text
    for topic, msgtype in (("/camera/image_raw", "sensor_msgs/msg/Image"),
                           ("/camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage")):
        assert ImageTopic(topic, msgtype, 1).namespace == "/camera"
    assert ImageTopic("/image", "sensor_msgs/msg/Image", 1).namespace == ""
    assert "--outputs" in text and "--output-scale" in text and "/tf_static" in text


def test_cli_outputs_scale_and_the_synthetic_model_warning(tmp_path, student_onnx, capsys):
    """A model whose manifest says it saw only synthetic scenes: one warning line before the
    run and in the report; --outputs/--color/--output-scale reach the bag; the printed report
    gives the bytes per frame."""
    import shutil

    from dudes_ros.runtime.manifest import load_manifest, manifest_path, write_manifest

    model = tmp_path / "model" / "student.onnx"
    model.parent.mkdir()
    shutil.copy(student_onnx, model)
    shutil.copy(manifest_path(student_onnx), manifest_path(model))
    manifest = load_manifest(model)
    manifest["trained_on"] = {"dataset": "synthetic", "description": "synthetic scenes",
                              "real_images": False}
    write_manifest(model, manifest)
    write_image_bag(tmp_path / "in", [Camera("/cam/image_raw")], 2, storage="mcap")
    args = ["process-bag", str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(model),
            "--backend", "onnxruntime", "--device", "cpu", "--no-progress",
            "--pixel-threshold", "0.5", "--frame-threshold", "0.2",
            "--outputs", "segmentation", "--color", "--output-scale", "0.25"]
    assert cli_main(args) == 0
    printed = capsys.readouterr().out
    warning = [line for line in printed.splitlines() if line.startswith("warning:")]
    assert len(warning) == 2  # before the run and in the report
    assert "seen only synthetic street scenes" in warning[0]
    assert "expect wrong classes on real camera images" in warning[0]
    assert "--model STUDENT.onnx" in warning[0]
    assert "model trained on: synthetic (synthetic scenes)" in printed
    summary = json.loads((tmp_path / "out" / SUMMARY_FILE).read_text())
    assert summary["warnings"] == [warning[0]]
    assert summary["trained_on"]["real_images"] is False
    assert set(read_back(tmp_path / "out")) == {"/cam/segmentation", "/cam/segmentation/color"}
    per_frame = summary["size"]["output_bytes_per_frame"]
    assert f"written per frame: outputs {format_bytes(per_frame)} (segmentation " in printed
    seg = read_back(tmp_path / "out")["/cam/segmentation"][0][1]
    assert (seg.height, seg.width) == (16, 32)


def test_cli_refuses_unknown_outputs_and_scales(tmp_path, student_onnx, capsys):
    base = ["process-bag", str(tmp_path / "in"), str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exc:
        cli_main([*base, "--outputs", "segmentation", "depth"])
    assert exc.value.code == 2
    assert "invalid choice: 'depth'" in capsys.readouterr().err
    for scale in ("0", "1.5", "half"):
        with pytest.raises(SystemExit):
            cli_main([*base, "--output-scale", scale])
        assert "is not a number in (0, 1]" in capsys.readouterr().err


def test_anomaly_regions_and_their_points_through_the_bags_camera_info(tmp_path, predictor, ood):
    """ood/mask, ood/regions and ood/points as the node builds them (``AnomalyLocator`` at the
    frame's pixel threshold, regions of the published map); points only once the camera's
    camera_info has arrived (it follows the first image here), and the summary says why the
    first frame has none."""
    from dudes_ros.anomaly_locator import AnomalyLocator, camera_geometry
    from dudes_ros.ground import FlatGround

    source = tmp_path / "in"
    write_camera_bag(source, "mcap")
    ground = FlatGround(1.5, 0.1)
    summary = process_bag(source, tmp_path / "out", predictor, ood,
                          ProcessOptions(progress=False, ground=ground, segmentation_class=250))
    out = read_back(tmp_path / "out")
    assert len(out["/cam/ood/mask"]) == len(out["/cam/ood/regions"]) == 3
    assert [m.header.stamp.sec for _, m in out["/cam/ood/points"]] == [1, 2]
    assert "camera cam: no camera_info received" in summary["points_problems"]["cam"]
    locator = AnomalyLocator()
    info = read_back(source)["/cam/camera_info"][0][1]
    for i in range(3):
        _, u = predictor.predict(pattern(i, (64, 128))[None])
        geometry, _ = camera_geometry("cam", info if i else None, (64, 128), ground)
        expected = locator.locate("cam", u[0], ood.pixel_threshold, geometry)
        mask = image_array(out["/cam/ood/mask"][i][1])
        np.testing.assert_array_equal(mask, expected.mask)
        boxes = [{kv.key: int(kv.value) for kv in status.values
                  if kv.key in ("x", "y", "width", "height")}
                 for status in out["/cam/ood/regions"][i][1].status]
        assert boxes == [{"x": r.x, "y": r.y, "width": r.width, "height": r.height}
                         for r in expected.regions]
        seg = image_array(out["/cam/segmentation"][i][1])
        assert (seg[mask > 0] == 250).all()
        if i:
            cloud = out["/cam/ood/points"][i - 1][1]
            points = np.frombuffer(cloud.data.tobytes(), "<f4").reshape(-1, 3)
            np.testing.assert_allclose(points, expected.points, rtol=1e-6)
