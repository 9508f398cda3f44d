"""Fault injection: corrupt model and engine files, a camera that dies and comes back, lifecycle
cycling, invalid runtime parameters, and an output disk that is full or not writable.

Nodes run in their own processes (``tests.test_node.start_node``); file faults are real bytes
on disk. What is simulated, and how, is said in each test's docstring.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from dudes_ros.inference.factory import create_predictor
from dudes_ros.inference.onnxruntime_backend import ModelFileError
from dudes_ros.model.checkpoint import CheckpointError
from dudes_ros.runtime.engine_cache import EngineCache, EngineKey
from dudes_ros.runtime.manifest import load_manifest, sha256_file, write_manifest
from tests.conftest import REPO
from tests.helpers.export_models import write_student

H, W = 64, 128


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, ONNX) of a tiny student; tests copy them before corrupting."""
    return write_student(tmp_path_factory.mktemp("student"))


def _copy_model(student, folder: Path) -> tuple[Path, Path]:
    ckpt, onnx = student
    for source in (ckpt, onnx, onnx.with_suffix(".json")):
        (folder / source.name).write_bytes(source.read_bytes())
    return folder / ckpt.name, folder / onnx.name


def _flip(path: Path, at: float = 0.5, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start:start + count] = bytes(b ^ 0xA5 for b in data[start:start + count])
    path.write_bytes(bytes(data))


# --- corrupt model and engine files ---------------------------------------------------------

@pytest.mark.parametrize("damage", ["flipped", "truncated", "empty"])
def test_corrupt_onnx_is_refused_naming_the_file(student, tmp_path, damage):
    """The ONNX no longer matches its manifest's sha256: refused before ORT sees it."""
    _, onnx = _copy_model(student, tmp_path)
    if damage == "flipped":
        _flip(onnx)
    else:
        data = onnx.read_bytes()
        onnx.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    with pytest.raises(ModelFileError, match="does not match its manifest") as info:
        create_predictor(onnx, backend="onnxruntime", device="cpu")
    assert str(onnx) in str(info.value) and "re-run `dudes export`" in str(info.value)


def test_corrupt_onnx_with_a_matching_manifest_names_the_file(student, tmp_path):
    """Corrupted and the manifest's sha256 rewritten to match: ONNX Runtime's parse error is
    wrapped with the file name."""
    _, onnx = _copy_model(student, tmp_path)
    onnx.write_bytes(onnx.read_bytes()[:5000])
    write_manifest(onnx, {**load_manifest(onnx), "onnx_sha256": sha256_file(onnx)})
    with pytest.raises(ModelFileError, match="cannot be loaded by ONNX Runtime") as info:
        create_predictor(onnx, backend="onnxruntime", device="cpu")
    assert str(onnx) in str(info.value)


@pytest.mark.parametrize("damage", ["manifest_missing", "manifest_garbage"])
def test_broken_manifest_is_refused_naming_it(student, tmp_path, damage):
    _, onnx = _copy_model(student, tmp_path)
    manifest = onnx.with_suffix(".json")
    if damage == "manifest_missing":
        manifest.unlink()
    else:
        manifest.write_text("{\"onnx_sha256\": ")
    with pytest.raises(ValueError, match=str(manifest)):
        create_predictor(onnx, backend="onnxruntime", device="cpu")


@pytest.mark.parametrize("damage", ["flipped", "truncated"])
def test_corrupt_checkpoint_is_refused_naming_the_file(student, tmp_path, damage):
    ckpt, _ = _copy_model(student, tmp_path)
    if damage == "flipped":
        _flip(ckpt, at=0.3, count=4096)
    else:
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(CheckpointError) as info:
        create_predictor(ckpt, backend="torch", device="cpu")
    assert str(ckpt) in str(info.value)
    if damage == "flipped":  # torch.load alone would have loaded the damaged weights
        assert "fails its CRC-32 check" in str(info.value)


KEY = EngineKey(onnx_sha256="b" * 64, tensorrt_version="10.3.0", gpu_name="NVIDIA Orin",
                compute_capability="8.7", precision="fp16",
                profile={"min": [1, 32, 32, 3], "opt": [1, H, W, 3], "max": [1, 1024, 2048, 3]})


class FakeRuntime:
    """Stands in for TensorRT: ``deserialize_cuda_engine`` returns None for bytes it did not
    build (what the real runtime does with a corrupt plan), never raises."""

    MAGIC = b"PLAN|"

    def __init__(self) -> None:
        self.builds = 0

    def build(self, onnx_path, key, progress) -> bytes:
        self.builds += 1
        return self.MAGIC + json.dumps(key.as_dict()).encode() + bytes(4096)

    def deserialize_cuda_engine(self, data: bytes):
        if not data.startswith(self.MAGIC) or len(data) < 4096:
            return None
        return {"plan_bytes": len(data)}


@pytest.mark.parametrize("damage", ["truncated", "flipped", "empty", "replaced_and_rehashed"])
def test_corrupt_cached_engine_is_rebuilt(tmp_path, damage):
    """The cached engine is damaged on disk between two runs: the next load rebuilds it (with
    the reason), replaces it atomically, and the load after that is a cache hit again."""
    runtime = FakeRuntime()
    cache = EngineCache(tmp_path / "cache", runtime.build, runtime.deserialize_cuda_engine)
    onnx = tmp_path / "student.onnx"
    first = cache.load(onnx, KEY).outcome
    engine = first.engine_path
    good = engine.read_bytes()
    if damage == "truncated":
        engine.write_bytes(good[:100])
    elif damage == "flipped":
        _flip(engine, at=0.9)
    elif damage == "empty":
        engine.write_bytes(b"")
    else:  # foreign plan whose manifest was updated: only deserialisation can tell
        engine.write_bytes(b"garbage" * 1000)
        manifest = engine.with_name(engine.name + ".json")
        record = json.loads(manifest.read_text())
        record["engine_sha256"] = sha256_file(engine)
        manifest.write_text(json.dumps(record))
    outcome = cache.load(onnx, KEY).outcome
    expected = "failed to deserialise" if damage == "replaced_and_rehashed" else (
        "does not match its manifest's sha256")
    assert outcome.built and expected in outcome.reason, outcome
    assert engine.read_bytes() == good
    assert not cache.load(onnx, KEY).outcome.built
    assert runtime.builds == 2
    leftovers = sorted(p.name for p in engine.parent.iterdir() if p.name.endswith(".tmp"))
    assert leftovers == []


# --- node processes --------------------------------------------------------------------------

rclpy = pytest.importorskip("rclpy")


@pytest.fixture(scope="module")
def offline(student):
    with create_predictor(student[1], backend="onnxruntime", device="cpu") as predictor:
        yield lambda rgb: predictor.predict(rgb[None])[0][0]


class RunningNode:
    """A node process in ``namespace`` with a test client; stopped by ``close``."""

    def __init__(self, model: Path, namespace: str, tmp_path: Path, **parameters) -> None:
        from tests.test_node import Client, start_node

        self.log = tmp_path / f"{namespace}.log"
        values = dict(model=model, device="cpu", qos__reliability="reliable",
                      ood__pixel_threshold=0.5, ood__frame_threshold=0.1,
                      diagnostics_period=0.2, max_input_age=0.0)
        values.update(parameters)
        self.process = start_node(dict(os.environ), self.log, namespace=namespace, **values)
        self.namespace = namespace
        self.client = Client([""], namespace=namespace)
        self.client.wait_ready(self.process, self.log)
        self.ps = psutil.Process(self.process.pid)

    def call(self, service_type, name: str, request, timeout: float = 20.0):
        client = self.client.node.create_client(service_type, f"/{self.namespace}/{name}")
        try:
            assert client.wait_for_service(timeout_sec=timeout), name
            future = client.call_async(request)
            assert self.client.spin_until(future.done, timeout), f"{name} did not answer"
            return future.result()
        finally:
            self.client.node.destroy_client(client)

    def send_frame(self, rgb: np.ndarray, frame_id: str):
        from tests.test_node import as_array, image_msg

        self.client.send("", image_msg(rgb, frame_id))
        return as_array(self.client.received[("", "segmentation", frame_id)])

    def close(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=30)


def test_corrupt_model_fails_configure_naming_the_file(ros_context, student, tmp_path):
    """The node's configure refuses a corrupted ONNX: exit code 1, the log names the file."""
    from tests.test_node import start_node

    _, onnx = _copy_model(student, tmp_path)
    _flip(onnx)
    log = tmp_path / "node.log"
    process = start_node(dict(os.environ), log, namespace="corrupt", model=onnx,
                         ood__pixel_threshold=0.5, ood__frame_threshold=0.1)
    assert process.wait(timeout=60) == 1
    text = log.read_text()
    assert "configure failed" in text and f"ONNX model {onnx} does not match its manifest" in (
        text), text


def _pattern_publisher(topic: str, count: int, rate: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.helpers.publish_pattern", topic,
                             str(count), str(rate), str(H), str(W)], cwd=REPO,
                            env=dict(os.environ), stdout=log.open("w"),
                            stderr=subprocess.STDOUT)


def test_camera_publisher_dies_and_comes_back(ros_context, student, offline, tmp_path):
    """A camera process is killed (SIGKILL, no goodbye) mid-stream and a new one starts on
    the same topic: the same node process picks the new stream up without any restart."""
    from tests.helpers.publish_pattern import pattern
    from tests.test_node import as_array

    node = RunningNode(student[1], "cam_fault", tmp_path, max_input_age=2.0,
                       qos__reliability="best_effort")
    received = node.client.received
    try:
        def outputs_since(t0_ns):
            return [(k[2], m) for k, m in list(received.items()) if k[1] == "segmentation"
                    and m.header.stamp.sec * 10**9 + m.header.stamp.nanosec > t0_ns]

        for run in range(2):
            start_ns = time.time_ns()
            camera_log = tmp_path / f"camera{run}.log"
            camera = _pattern_publisher("/cam_fault/image", 100000, 10, camera_log)
            try:
                assert node.client.spin_until(lambda s=start_ns: len(outputs_since(s)) >= 5,
                                              60), (run, node.log.read_text(),
                                                    camera_log.read_text(), received.keys())
            finally:
                camera.send_signal(signal.SIGKILL)
                camera.wait(timeout=10)
            frame_id, msg = outputs_since(start_ns)[-1]
            np.testing.assert_array_equal(
                as_array(msg), offline(pattern(int(frame_id), H, W)))
            node.client.spin_until(lambda: False, 1.0)  # the camera stays dead for a while
        assert node.process.poll() is None
        counts = node.client.latest_counts()
        assert counts["frames_errors"] == "0" and counts["frames_rejected"] == "0", counts
    finally:
        node.close()


def _usage(ps: psutil.Process) -> tuple[int, int, int]:
    with ps.oneshot():
        return ps.num_threads(), ps.num_fds(), ps.memory_info().rss


def test_fifty_deactivate_activate_cycles_leak_nothing(ros_context, student, offline, tmp_path):
    """50 deactivate/activate transitions through <node>/change_state (each one closes and
    reloads the predictor): threads and file descriptors come back to the same count, RSS
    over the last 20 cycles stays within 5 % + 8 MiB of its level over cycles 5-20, and
    frames are processed correctly throughout.

    RSS is compared as the median of 4 samples: between samples it moves by up to 30 MiB
    without a trend (reloading ONNX Runtime sessions, allocator arenas; 287-318 MiB over 120
    cycles of this node, 293-321 MiB with the node before CdrPublisher), so two single samples
    differed by 38 MiB once in CI while a leak would keep climbing."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    node = RunningNode(student[1], "lifecycle", tmp_path)
    frame = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
    expected = offline(frame)
    try:
        def transition(transition_id):
            result = node.call(ChangeState, "dudes_node/change_state",
                               ChangeState.Request(transition=Transition(id=transition_id)))
            assert result.success, (transition_id, node.log.read_text()[-2000:])

        usage = {}
        for cycle in range(1, 51):
            transition(Transition.TRANSITION_DEACTIVATE)
            transition(Transition.TRANSITION_ACTIVATE)
            if cycle % 5 == 0:
                np.testing.assert_array_equal(node.send_frame(frame, f"cycle{cycle}"), expected)
                time.sleep(0.3)
                usage[cycle] = _usage(node.ps)
        state = node.call(GetState, "dudes_node/get_state", GetState.Request())
        assert state.current_state.label == "active"
        print(f"lifecycle cycles (threads, fds, RSS bytes) by cycle: {usage}")
        early, late = [usage[c] for c in (5, 10, 15, 20)], [usage[c] for c in (35, 40, 45, 50)]
        assert usage[50][:2] == usage[5][:2], usage  # threads, fds
        rss_early, rss_late = (float(np.median([u[2] for u in x])) for x in (early, late))
        assert rss_late <= rss_early * 1.05 + 8 * 2**20, usage
    finally:
        node.close()


def _set(node: RunningNode, *changes, atomically: bool = False):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters, SetParametersAtomically

    def value(v):
        if isinstance(v, bool):
            return ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=v)
        if isinstance(v, int):
            return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=v)
        if isinstance(v, float):
            return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=v)
        return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=v)

    parameters = [Parameter(name=n, value=value(v)) for n, v in changes]
    if atomically:
        return node.call(SetParametersAtomically, "dudes_node/set_parameters_atomically",
                         SetParametersAtomically.Request(parameters=parameters)).result
    return node.call(SetParameters, "dudes_node/set_parameters",
                     SetParameters.Request(parameters=parameters)).results[0]


def _get(node: RunningNode, *names):
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    values = node.call(GetParameters, "dudes_node/get_parameters",
                       GetParameters.Request(names=list(names))).values
    return [parameter_value_to_python(v) for v in values]


INVALID_CHANGES = [
    ("ood.frame_threshold", -0.2, ["ood.frame_threshold", "-0.2", "[0, 1]"]),
    ("ood.pixel_threshold", 1.5, ["ood.pixel_threshold", "1.5"]),
    ("ood.raise_after", 0, ["ood.raise_after", "0", ">= 1"]),
    ("max_input_age", -1.0, ["max_input_age", "-1.0"]),
    ("max_input_age", float("nan"), ["max_input_age", "nan"]),
    ("reject_log_period", "often", ["Wrong parameter type"]),  # refused by rclpy itself
    ("backend", "torch", ["backend", "cannot change while the node is configured"]),
    ("cameras", ["a", "b"], ["cameras", "cannot change"]),
    ("model", "other.onnx", ["model", "cannot change"]),
]


def test_invalid_runtime_parameter_changes_are_refused_and_change_nothing(
        ros_context, student, offline, tmp_path):
    """Each invalid SetParameters call fails with a reason naming the parameter (and value),
    the old value stays (GetParameters and /diagnostics), and the node keeps streaming."""
    node = RunningNode(student[1], "params", tmp_path, max_input_age=3.0)
    frame = np.random.default_rng(5).integers(0, 256, (H, W, 3), dtype=np.uint8)
    try:
        names = sorted({name for name, _, _ in INVALID_CHANGES})
        before = _get(node, *names)
        for name, value, words in INVALID_CHANGES:
            if isinstance(value, list):
                from rclpy.parameter import Parameter as RclpyParameter

                result = _set_array(node, RclpyParameter(name, value=value))
            else:
                result = _set(node, (name, value))
            assert not result.successful, (name, value)
            assert all(w in result.reason for w in words), (name, result.reason)
        # one valid and one invalid change together: all or nothing
        result = _set(node, ("ood.frame_threshold", 0.3), ("ood.raise_after", -4),
                      atomically=True)
        assert not result.successful and "ood.raise_after" in result.reason
        assert _get(node, *names) == before
        counts = node.client.latest_counts()
        assert float(counts["ood_frame_threshold"]) == pytest.approx(0.1)
        np.testing.assert_array_equal(node.send_frame(frame, "after"), offline(frame))
        # NaN means "the manifest's calibration": this model has none, so it is refused
        result = _set(node, ("ood.frame_threshold", float("nan")))
        assert not result.successful and "no OOD calibration" in result.reason
        assert _set(node, ("ood.frame_threshold", 0.25)).successful
        assert _get(node, "ood.frame_threshold") == [0.25]
        assert float(node.client.latest_counts()["ood_frame_threshold"]) == pytest.approx(0.25)
        assert node.process.poll() is None
    finally:
        node.close()


def _set_array(node: RunningNode, parameter):
    from rcl_interfaces.srv import SetParameters

    return node.call(SetParameters, "dudes_node/set_parameters", SetParameters.Request(
        parameters=[parameter.to_parameter_msg()])).results[0]


# --- process-bag with a full or unwritable output disk ----------------------------------------

@pytest.fixture
def small_bag(tmp_path) -> Path:
    from tests.helpers.bags import Camera, write_image_bag

    write_image_bag(tmp_path / "in", [Camera("/cam/image_raw")], 6, storage="mcap")
    return tmp_path / "in"


def _process_bag_cli(bag: Path, out: Path, onnx: Path, capsys) -> tuple[int, str]:
    from dudes_ros.cli import main as cli_main

    code = cli_main(["process-bag", str(bag), str(out), "--model", str(onnx), "--backend",
                     "onnxruntime", "--device", "cpu", "--pixel-threshold", "0.5",
                     "--frame-threshold", "0.1", "--no-progress"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("where", ["bag_write", "summary_write", "staging_mkdir"])
def test_disk_full_or_read_only_during_process_bag(small_bag, student, tmp_path, capsys,
                                                   monkeypatch, where):
    """Simulated with monkeypatching (tests run as root, where permissions do not stop writes):
    the bag writer raises ENOSPC on its 10th message (mid-way through the frames), writing
    summary.json raises ENOSPC (after the bag was closed), or creating the staging folder
    raises EROFS (a read-only filesystem). The CLI exits 2 with the reason, and nothing is left
    under the output's folder: no OUT, no partial staging folder."""
    from pathlib import Path as PathClass

    from rosbags.rosbag2 import Writer

    count = {"writes": 0}
    if where == "bag_write":
        original_write = Writer.write

        def write(self, *args, **kwargs):
            count["writes"] += 1
            if count["writes"] == 10:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return original_write(self, *args, **kwargs)
        monkeypatch.setattr(Writer, "write", write)
    elif where == "summary_write":
        original = PathClass.write_text

        def write_text(self, *args, **kwargs):
            if self.name == "summary.json":
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
            return original(self, *args, **kwargs)
        monkeypatch.setattr(PathClass, "write_text", write_text)
    else:
        original = PathClass.mkdir

        def mkdir(self, *args, **kwargs):
            if ".partial-" in self.name:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
            return original(self, *args, **kwargs)
        monkeypatch.setattr(PathClass, "mkdir", mkdir)
    out = tmp_path / "results" / "out"
    code, err = _process_bag_cli(small_bag, out, student[1], capsys)
    assert code == 2, err
    number = errno.EROFS if where == "staging_mkdir" else errno.ENOSPC
    assert f"dudes process-bag: error: [Errno {number}] {os.strerror(number)}" in err, err
    assert f"nothing was written to {out}" in err and "Traceback" not in err
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    if where == "bag_write":
        assert count["writes"] == 10  # it failed mid-way, after 9 messages were written


@pytest.mark.parametrize("blocker", ["file_as_folder", "read_only_folder"])
def test_unwritable_output_folder_is_refused_before_any_work(small_bag, student, tmp_path,
                                                             capsys, monkeypatch, blocker):
    """OUT under a regular file (a real fault, even for root), or a folder that
    ``os.access`` reports unwritable (monkeypatched: root may write anywhere): refused before
    the model is loaded, with the folder named."""
    import dudes_ros.bag.staging as staging

    if blocker == "file_as_folder":
        (tmp_path / "results").write_text("not a folder")
        words = "is a file, not a folder"
    else:
        (tmp_path / "results").mkdir()
        monkeypatch.setattr(staging.os, "access", lambda path, mode: False)
        words = "is not writable"
    out = tmp_path / "results" / "nested" / "out"
    code, err = _process_bag_cli(small_bag, out, student[1], capsys)
    assert code == 2 and words in err and str(tmp_path / "results") in err, err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in", "results"]
