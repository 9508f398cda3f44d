"""``dudes demo``: report maths and sources without ROS; a shortened demo end to end through the
real node, checked against the recorded bag and an offline run of the same ONNX."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from dudes_ros import cli
from dudes_ros.commands import demo as demo_command
from dudes_ros.config import ConfigError
from dudes_ros.demo import session
from dudes_ros.demo.node_process import node_command, ros_value
from dudes_ros.demo.report import FrameRecord, select_frames, summarize
from dudes_ros.demo.sources import bag_drive, image_folder_drive, synthetic_drive
from dudes_ros.ood import Hysteresis, runs, uncertain_fraction
from tests.helpers.bags import Camera, write_image_bag

NS = session.NAMESPACE
BAG_TOPICS = {f"{NS}/image": "sensor_msgs/msg/Image",
              f"{NS}/segmentation": "sensor_msgs/msg/Image",
              f"{NS}/uncertainty": "sensor_msgs/msg/Image",
              f"{NS}/confidence": "sensor_msgs/msg/Image",
              f"{NS}/ood": "diagnostic_msgs/msg/DiagnosticArray",
              f"{NS}/ood_alarm": "std_msgs/msg/Bool",
              f"{NS}/ood/regions": "diagnostic_msgs/msg/DiagnosticArray"}
DRIVE = {"seed": 1, "size": (64, 128), "n_frames": 10, "enter_frame": 3, "leave_frame": 7}


def _records(alarms: list[bool], scores: list[float] | None = None) -> list[FrameRecord]:
    records = []
    for i, alarm in enumerate(alarms):
        r = FrameRecord(i, 1000 + i, 4, 8, published=float(i))
        r.received = {k: i + 0.05 for k in ("segmentation", "uncertainty", "confidence", "ood",
                                            "ood_alarm", "ood/regions")}
        r.score, r.threshold, r.alarm = (scores[i] if scores else 0.0), 0.1, alarm
        records.append(r)
    return records


# --- report maths (no ROS) -----------------------------------------------------------------

def test_runs_gives_half_open_intervals() -> None:
    assert runs([False, True, True, False, True]) == [(1, 3), (4, 5)]
    assert runs([]) == [] and runs([False]) == []


def test_summary_detection_clearing_and_false_alarm() -> None:
    in_view = [10 <= i < 20 for i in range(30)]
    alarms = [3 <= i < 5 or 12 <= i < 25 for i in range(30)]
    s = summarize(_records(alarms), in_view, raise_after=3)
    a = s["anomaly"]
    assert (a["entered_frame"], a["left_frame"], a["frames_in_view"]) == (10, 20, 10)
    assert (a["alarm_rose_frame"], a["rise_delay_frames"]) == (12, 2)
    assert (a["alarm_cleared_frame"], a["clear_delay_frames"]) == (25, 5)
    assert a["false_alarm_intervals"] == [[3, 5]]
    assert (a["false_alarms"], a["false_alarm_frames"]) == (1, 2)
    assert s["alarm_intervals"] == [[3, 5], [12, 25]]
    assert s["checks"] == {"alarm_rose_within_5_frames": True,
                           "alarm_cleared_after_anomaly_left": True, "no_false_alarms": False}
    assert (s["frames_in"], s["frames_out"], s["frames_lost"]) == (30, 30, 0)
    assert s["latency_ms"]["p50"] == pytest.approx(50.0)


def test_summary_alarm_already_raised_before_entry_is_a_false_alarm() -> None:
    in_view = [4 <= i < 8 for i in range(12)]
    alarms = [i >= 2 for i in range(12)]  # rose before the anomaly, never cleared
    a = summarize(_records(alarms), in_view, raise_after=3)["anomaly"]
    assert a["alarm_rose_frame"] is None and a["detection_episodes"] == 0
    assert a["false_alarm_intervals"] == [[2, 12]]
    assert a["false_alarm_frames"] == 6  # frames 2, 3 and 8..11: the in-view ones don't count


def test_summary_late_rise_within_debounce_after_leaving_is_a_detection() -> None:
    in_view = [4 <= i < 6 for i in range(15)]
    alarms = [7 <= i < 9 for i in range(15)]
    s = summarize(_records(alarms), in_view, raise_after=3)
    assert s["anomaly"]["alarm_rose_frame"] == 7 and s["anomaly"]["false_alarms"] == 0
    assert s["checks"]["alarm_rose_within_5_frames"]


def test_summary_without_ground_truth_and_lost_frames() -> None:
    records = _records([False, True, True, False])
    records[3].received.pop("ood_alarm")
    records[3].alarm = None
    s = summarize(records, None, raise_after=1)
    assert s["anomaly"] is None and s["checks"] is None
    assert (s["frames_out"], s["frames_lost"]) == (3, 1)
    assert s["alarm_intervals"] == [[1, 3]]
    assert s["frames"][3]["latency_ms"] is None


def test_select_frames_spans_before_during_after() -> None:
    in_view = [24 <= i < 48 for i in range(72)]
    s = summarize(_records([False] * 72), in_view, raise_after=3)
    chosen = select_frames(s)
    assert len(chosen) == 6 and chosen == sorted(chosen)
    assert sum(i < 24 for i in chosen) == 2 and sum(24 <= i < 48 for i in chosen) == 2
    assert sum(i >= 48 for i in chosen) == 2
    assert select_frames(summarize(_records([False] * 3), None, 1)) == [0, 1, 2]


# --- command pieces ------------------------------------------------------------------------

def test_node_command_keeps_parameter_types() -> None:
    assert ros_value(1.0) == "1.0" and ros_value(0.25) == "0.25"
    assert ros_value(True) == "true" and ros_value(3) == "3"
    cmd = node_command("/ns", {"model": "m.onnx", "ood.frame_threshold": 0.0})
    assert cmd[1:] == ["-m", "dudes_ros.ros.node", "--ros-args", "-r", "__ns:=/ns",
                       "-p", "model:=m.onnx", "-p", "ood.frame_threshold:=0.0"]


def test_ood_parameters_refuse_an_uncalibrated_model(tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    manifest = {"format_version": 1, "model_name": "m", "model_config": {}, "classes": [],
                "input": {}, "outputs": {}, "onnx_sha256": "0",
                "ood": {"pixel_threshold": None, "frame_threshold": None}}
    onnx.with_suffix(".json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="pixel_threshold.*no OOD calibration"):
        session.ood_parameters(onnx, None, 0.1, 3, 5)
    values, _ = session.ood_parameters(onnx, 0.4, 0.1, 2, 4)
    assert values == {"ood.pixel_threshold": 0.4, "ood.frame_threshold": 0.1,
                      "ood.raise_after": 2, "ood.clear_after": 4}


def test_output_folder_is_replaced_only_when_it_is_a_demo_output(tmp_path: Path) -> None:
    other = tmp_path / "mine"
    other.mkdir()
    with pytest.raises(FileExistsError, match="--overwrite"):
        session.check_demo_output(other, overwrite=False)
    session.check_demo_output(other, overwrite=True)
    (other / session.SUMMARY_FILE).write_text(json.dumps({"kind": session.KIND}))
    session.check_demo_output(other, overwrite=False)


def test_missing_bundled_model_is_refused(monkeypatch, capsys) -> None:
    monkeypatch.setattr(demo_command, "resolve_model", lambda model: None)
    assert cli.main(["demo"]) == 2
    assert "no bundled student" in capsys.readouterr().err


def test_image_folder_drive_plays_files_in_name_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (20, 30, 3), dtype=np.uint8) for _ in range(3)]
    for i, rgb in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"f{2 - i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    (tmp_path / "notes.txt").write_text("not an image")
    drive = image_folder_drive(tmp_path)
    assert drive.count == 3 and drive.in_view is None
    for got, want in zip(drive.frames(), frames[::-1], strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="not a directory"):
        image_folder_drive(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        image_folder_drive(tmp_path / "empty")


def test_bag_drive_decodes_the_chosen_topic(tmp_path: Path) -> None:
    cameras = [Camera("/front/image_raw", "bgr8"), Camera("/rear/image/compressed", "png")]
    frames = write_image_bag(tmp_path / "in", cameras, 4)
    with pytest.raises(ValueError, match="several image topics"):
        bag_drive(tmp_path / "in")
    drive = bag_drive(tmp_path / "in", "/rear/image/compressed", max_frames=3)
    want = [f.rgb for f in frames if f.topic == "/rear/image/compressed"][:3]
    got = list(drive.frames())
    assert drive.count == 3 and len(got) == 3
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


# --- end to end through the real node ------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from tests.helpers.tiny_models import tiny_onnx

    return tiny_onnx(tmp_path_factory.mktemp("model"))


def _between(values: np.ndarray) -> float:
    """A threshold halfway between the two distinct values around the median (never equal
    to a value, so a last-bit difference between runs cannot flip a comparison)."""
    unique = np.unique(values)
    k = len(unique) // 2
    return float((unique[k - 1] + unique[k]) / 2)


def _read_bag(path: Path) -> dict[str, list[tuple[int, object]]]:
    out: dict[str, list[tuple[int, object]]] = {}
    with AnyReader([path]) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == BAG_TOPICS
        for connection, timestamp, raw in reader.messages():
            out.setdefault(connection.topic, []).append(
                (timestamp, reader.deserialize(raw, connection.msgtype)))
    return out


REGION_KEYS = ("id", "x", "y", "width", "height")


def _stamp(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


@pytest.mark.ros
def test_short_demo_end_to_end_matches_bag_and_offline_run(tiny_model: Path,
                                                           tmp_path: Path) -> None:
    from dudes_ros.inference.factory import create_predictor

    drive = synthetic_drive(DRIVE["seed"], DRIVE["size"], DRIVE["n_frames"],
                            DRIVE["enter_frame"], DRIVE["leave_frame"])
    frames = np.stack(list(drive.frames()))
    predictor = create_predictor(tiny_model, backend="onnxruntime", device="cpu")
    labels, uncertainty = predictor.predict(frames)
    pixel = _between(uncertainty)
    fractions = np.array([uncertain_fraction(u, pixel) for u in uncertainty])
    frame = _between(fractions)
    out = tmp_path / "demo_output"
    code = cli.main(["demo", "--model", str(tiny_model), "--seed", str(DRIVE["seed"]),
                     "--size", "64x128", "--frames", str(DRIVE["n_frames"]),
                     "--enter", str(DRIVE["enter_frame"]), "--leave", str(DRIVE["leave_frame"]),
                     "--pixel-threshold", str(pixel), "--frame-threshold", str(frame),
                     "--raise-after", "1", "--clear-after", "1", "--rate", "20",
                     "--output", str(out), "--no-progress"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    n = DRIVE["n_frames"]
    assert (summary["frames_in"], summary["frames_out"], summary["frames_lost"]) == (n, n, 0)
    assert summary["backend"] == "onnxruntime" and summary["unmatched_outputs"] == {}
    assert summary["node_diagnostics"]["frames_processed"] == str(n)

    bag = _read_bag(out / "bag")
    assert {t: len(m) for t, m in bag.items()} == dict.fromkeys(BAG_TOPICS, n)
    inputs = bag[f"{NS}/image"]
    stamps = [_stamp(m) for _, m in inputs]
    assert stamps == sorted(set(stamps))
    assert [f["stamp_ns"] for f in summary["frames"]] == stamps
    for topic, messages in bag.items():  # every message is logged at its frame's stamp
        assert [t for t, _ in messages] == stamps, topic
        if topic != f"{NS}/ood_alarm":
            assert [_stamp(m) for _, m in messages] == stamps, topic
    for i, (_, msg) in enumerate(inputs):
        assert (msg.encoding, msg.height, msg.width) == ("rgb8", 64, 128)
        np.testing.assert_array_equal(msg.data.reshape(64, 128, 3), frames[i])

    # outputs equal an offline run of the same ONNX on the same frames
    for i, (_, msg) in enumerate(bag[f"{NS}/segmentation"]):
        assert np.mean(msg.data.reshape(64, 128) == labels[i]) >= 0.999
    for i, (_, msg) in enumerate(bag[f"{NS}/uncertainty"]):
        got = msg.data.view(np.float32).reshape(64, 128)
        np.testing.assert_allclose(got, uncertainty[i], atol=1e-5)
    for i, (_, msg) in enumerate(bag[f"{NS}/confidence"]):
        want = np.rint(255 * (1 - uncertainty[i])).astype(np.int16)
        assert np.abs(msg.data.reshape(64, 128).astype(np.int16) - want).max() <= 1
    scores = [float({kv.key: kv.value for kv in m.status[0].values}["score"])
              for _, m in bag[f"{NS}/ood"]]
    np.testing.assert_allclose(scores, fractions, atol=2 / (64 * 128))
    assert [f["score"] for f in summary["frames"]] == scores

    # the alarm: bag == summary == the debounce replayed on the scores
    alarms = [m.data for _, m in bag[f"{NS}/ood_alarm"]]
    hysteresis = Hysteresis(frame, raise_after=1, clear_after=1)
    assert alarms == [hysteresis.update(s) for s in fractions]
    assert [f["alarm"] for f in summary["frames"]] == alarms
    assert summary["alarm_intervals"] == [list(r) for r in runs(alarms)]
    assert 0 < sum(alarms) < n  # the median thresholds make the alarm rise and clear
    ood_alarm_values = [{kv.key: kv.value for kv in m.status[0].values}["alarm"] == "true"
                        for _, m in bag[f"{NS}/ood"]]
    assert ood_alarm_values == alarms
    # the regions: the node's (the offline locator's on the same u maps), in summary and bag
    from dudes_ros.anomaly_locator import AnomalyLocator

    locator = AnomalyLocator()
    expected = [[{"id": r.id, "x": r.x, "y": r.y, "width": r.width, "height": r.height}
                 for r in locator.locate("", u, pixel).regions] for u in uncertainty]
    assert [f["regions"] for f in summary["frames"]] == expected
    assert [[{kv.key: int(kv.value) for kv in status.values if kv.key in REGION_KEYS}
             for status in m.status] for _, m in bag[f"{NS}/ood/regions"]] == expected

    # ground truth from the rendered anomaly masks
    assert [f["in_view"] for f in summary["frames"]] == list(drive.in_view)
    assert summary["anomaly"]["entered_frame"] == DRIVE["enter_frame"]
    assert summary["anomaly"]["left_frame"] == DRIVE["leave_frame"]
    latencies = [f["latency_ms"] for f in summary["frames"]]
    assert all(v > 0 for v in latencies)
    assert summary["latency_ms"]["p50"] == pytest.approx(np.percentile(latencies, 50), abs=0.02)
    assert summary["latency_ms"]["p50"] <= summary["latency_ms"]["p95"]

    sheet = cv2.imread(str(out / "contact_sheet.png"))
    timeline = cv2.imread(str(out / "ood_timeline.png"))
    assert sheet is not None and timeline is not None
    assert sheet.shape[0] > 400 and sheet.shape[1] > 600 and timeline.shape[1] > 600
    assert len(summary["contact_sheet_frames"]) == 6
    assert "configured" in (out / "node.log").read_text()


@pytest.mark.ros
def test_demo_on_a_folder_of_images(tiny_model: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    drive = synthetic_drive(2, (48, 96), 3, 1, 2)
    for i, rgb in enumerate(drive.frames()):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    code = cli.main(["demo", "--model", str(tiny_model), "--images", str(folder),
                     "--pixel-threshold", "0.5", "--frame-threshold", "0.5", "--output",
                     str(out), "--no-progress", "--rate", "20"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["frames_in"], summary["frames_out"]) == (3, 3)
    assert summary["anomaly"] is None and summary["drive"]["source"] == "images"
    assert "no ground truth" in capsys.readouterr().out
    assert len(_read_bag(out / "bag")[f"{NS}/image"]) == 3


def test_arguments_parse_size_and_refuse_bad_values() -> None:
    parser = argparse.ArgumentParser()
    demo_command.add_arguments(parser)
    assert parser.parse_args(["--size", "128x256"]).size == (128, 256)
    with pytest.raises(SystemExit):
        parser.parse_args(["--size", "128"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--rate", "0"])


@pytest.mark.ros
def test_a_node_that_fails_to_configure_is_reported_and_nothing_is_left(
        tiny_model: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    bad.with_suffix(".json").write_text(tiny_model.with_suffix(".json").read_text())
    assert cv2.imwrite(str(tmp_path / "frame.png"), np.zeros((32, 48, 3), np.uint8))
    out = tmp_path / "out"
    code = cli.main(["demo", "--model", str(bad), "--images", str(tmp_path), "--output",
                     str(out), "--pixel-threshold", "0.5", "--frame-threshold", "0.5",
                     "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert "the dudes node exited with code 1" in err and "configure failed" in err
    assert not out.exists() and not list(tmp_path.glob("out.partial-*"))
