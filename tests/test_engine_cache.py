"""Engine-cache logic without TensorRT: a fake builder and deserialiser stand in for it."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from dudes_ros.config import ConfigError
from dudes_ros.runtime.engine_cache import (
    EngineBuildError,
    EngineCache,
    EngineKey,
    engine_name,
)
from dudes_ros.runtime.precision import calibration_id, calibration_images, load_rgb
from dudes_ros.runtime.tensorrt_engine import EngineSettings

KEY = EngineKey(onnx_sha256="a" * 64, tensorrt_version="10.3.0", gpu_name="NVIDIA H200",
                compute_capability="9.0", precision="fp16",
                profile={"min": [1, 64, 128, 3], "opt": [2, 64, 128, 3],
                         "max": [2, 64, 128, 3]})


class FakeTensorRT:
    """Builds b"ENGINE|<key json>"; deserialises only bytes with that prefix."""

    def __init__(self, fail: bool = False, output: bytes | None = None) -> None:
        self.builds = 0
        self.fail = fail
        self.output = output

    def build(self, onnx_path: Path, key: EngineKey, progress) -> bytes:
        self.builds += 1
        progress("Building engine", 0, 2)
        progress("Building engine", 1, 0)
        progress("Building engine", 2, 0)
        progress("Building engine", -1, 0)
        if self.fail:
            raise RuntimeError("builder crashed")
        return self.output or b"ENGINE|" + json.dumps(key.as_dict()).encode()

    @staticmethod
    def deserialize(data: bytes) -> dict:
        if not data.startswith(b"ENGINE|"):
            raise RuntimeError("Serialization assertion magicTagRead failed")
        return json.loads(data[len(b"ENGINE|"):])


def make_cache(tmp_path: Path, fake: FakeTensorRT) -> EngineCache:
    return EngineCache(tmp_path / "cache", fake.build, fake.deserialize)


def built_engine(tmp_path: Path) -> tuple[FakeTensorRT, EngineCache, Path, Path, Path]:
    """A cache holding one built engine for ``KEY``: (fake, cache, onnx, engine, manifest)."""
    fake = FakeTensorRT()
    cache = make_cache(tmp_path, fake)
    onnx_path = tmp_path / "student.onnx"
    cache.load(onnx_path, KEY)
    engine_path, manifest_path, _ = cache.paths(onnx_path, KEY)
    return fake, cache, onnx_path, engine_path, manifest_path


def test_build_then_hit(tmp_path):
    fake = FakeTensorRT()
    cache = make_cache(tmp_path, fake)
    calls = []
    first = cache.load(tmp_path / "student.onnx", KEY, lambda *a: calls.append(a))
    assert first.outcome.built and first.outcome.reason.startswith("no cached engine")
    assert first.engine == KEY.as_dict()
    assert calls == [("Building engine", 0, 2), ("Building engine", 1, 0),
                     ("Building engine", 2, 0), ("Building engine", -1, 0)]
    engine_path = first.outcome.engine_path
    assert engine_path.name == f"student.fp16.b2.nvidia-h200-sm90.{KEY.digest()[:12]}.engine"
    manifest = json.loads(engine_path.with_name(engine_path.name + ".json").read_text())
    assert manifest["key"] == KEY.as_dict()
    assert manifest["format"] == "dudes_ros.engine/1"
    second = cache.load(tmp_path / "student.onnx", KEY)
    assert not second.outcome.built and second.outcome.reason == "cache hit"
    assert second.engine == first.engine and fake.builds == 1
    assert sorted(p.name for p in engine_path.parent.iterdir()) == [
        engine_path.name, engine_path.name + ".json", engine_path.name + ".lock"]


@pytest.mark.parametrize("change, field", [
    ({"onnx_sha256": "b" * 64}, "onnx_sha256"),
    ({"tensorrt_version": "10.7.0"}, "tensorrt_version"),
    ({"profile": {"min": [1, 64, 128, 3], "opt": [4, 64, 128, 3], "max": [4, 64, 128, 3]}},
     "profile"),
    ({"calibration": "100 images"}, "calibration"),
])
def test_every_key_field_gets_its_own_engine_beside_the_others(tmp_path, change, field):
    fake = FakeTensorRT()
    cache = make_cache(tmp_path, fake)
    onnx_path = tmp_path / "student.onnx"
    old = cache.load(onnx_path, KEY)
    new_key = replace(KEY, **change)
    new = cache.load(onnx_path, new_key)
    assert new.outcome.built and fake.builds == 2
    assert new.outcome.engine_path != old.outcome.engine_path  # coexist, not replaced
    assert new.engine == new_key.as_dict()
    assert [m.split(":")[0] for m in KEY.mismatches(new.engine)] == [field]
    assert new.outcome.reason.startswith("no cached engine")
    assert new.outcome.engine_path.name.endswith(f".{new_key.digest()[:12]}.engine")
    assert not cache.load(onnx_path, new_key).outcome.built
    assert not cache.load(onnx_path, KEY).outcome.built and fake.builds == 2


def test_a_manifest_with_another_key_under_the_name_rebuilds_with_reason(tmp_path):
    _, cache, onnx_path, _, manifest_file = built_engine(tmp_path)
    manifest = json.loads(manifest_file.read_text())
    manifest["key"]["tensorrt_version"] = "10.7.0"
    manifest_file.write_text(json.dumps(manifest))
    again = cache.load(onnx_path, KEY)
    assert again.outcome.built and again.outcome.reason.startswith(
        "key mismatch: tensorrt_version: cached '10.7.0'")


def test_other_gpu_or_precision_gets_its_own_file(tmp_path):
    cache = make_cache(tmp_path, FakeTensorRT())
    onnx_path = tmp_path / "student.onnx"
    a = cache.load(onnx_path, KEY).outcome.engine_path
    b = cache.load(onnx_path, replace(KEY, precision="int8")).outcome.engine_path
    orin = replace(KEY, gpu_name="Orin (nvgpu)", compute_capability="8.7")
    c = cache.load(onnx_path, orin).outcome.engine_path
    assert len({a, b, c}) == 3
    assert c.name == f"student.fp16.b2.orin-nvgpu-sm87.{orin.digest()[:12]}.engine"
    assert engine_name(onnx_path, KEY) == f"student.fp16.b2.nvidia-h200-sm90.{KEY.digest()[:12]}"


def test_corrupt_foreign_or_unlisted_engines_are_rebuilt(tmp_path):
    fake, cache, onnx_path, engine_path, manifest_path = built_engine(tmp_path)

    engine_path.write_bytes(b"\x00garbage")  # corrupt: sha256 no longer matches
    outcome = cache.load(onnx_path, KEY).outcome
    assert outcome.built and "does not match its manifest's sha256" in outcome.reason

    # a foreign engine whose manifest was made to match: fails to deserialise
    foreign = b"TRT-ENGINE-FROM-ANOTHER-MACHINE"
    engine_path.write_bytes(foreign)
    manifest = json.loads(manifest_path.read_text())
    manifest["engine_sha256"] = hashlib.sha256(foreign).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    outcome = cache.load(onnx_path, KEY).outcome
    assert outcome.built and "failed to deserialise" in outcome.reason

    manifest_path.write_text("{truncated")
    outcome = cache.load(onnx_path, KEY).outcome
    assert outcome.built and "is unreadable" in outcome.reason

    manifest_path.unlink()
    outcome = cache.load(onnx_path, KEY).outcome
    assert outcome.built and "has no manifest" in outcome.reason
    assert fake.builds == 5
    assert fake.deserialize(engine_path.read_bytes()) == KEY.as_dict()


def test_failed_build_leaves_previous_engine_and_no_temp_files(tmp_path):
    _, _, onnx_path, engine_path, manifest_path = built_engine(tmp_path)
    # A manifest whose key no longer matches makes the next load rebuild this very file.
    manifest = json.loads(manifest_path.read_text())
    manifest["key"]["tensorrt_version"] = "10.7.0"
    manifest_path.write_text(json.dumps(manifest))
    before = engine_path.read_bytes(), manifest_path.read_bytes()
    crashing = make_cache(tmp_path, FakeTensorRT(fail=True))
    with pytest.raises(RuntimeError, match="builder crashed"):
        crashing.load(onnx_path, KEY)
    assert (engine_path.read_bytes(), manifest_path.read_bytes()) == before
    broken = make_cache(tmp_path, FakeTensorRT(output=b"half an engine"))
    with pytest.raises(EngineBuildError, match=r"student\.onnx cannot be deserialised"):
        broken.load(onnx_path, KEY)
    assert (engine_path.read_bytes(), manifest_path.read_bytes()) == before
    assert not [p for p in engine_path.parent.iterdir() if p.name.endswith(".tmp")]


def _load_in_process(folder: str, counter: str, queue) -> None:
    def slow_build(onnx_path, key, progress):
        with open(counter, "a") as f:
            f.write("build\n")
        time.sleep(0.5)
        return b"ENGINE|" + json.dumps(key.as_dict()).encode()

    cache = EngineCache(folder, slow_build, FakeTensorRT.deserialize)
    loaded = cache.load(Path(folder) / "student.onnx", KEY)
    queue.put((loaded.outcome.built, loaded.engine == KEY.as_dict()))


def test_concurrent_processes_build_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")  # no fork of a torch-loaded pytest
    queue = ctx.Queue()
    counter = tmp_path / "builds.txt"
    procs = [ctx.Process(target=_load_in_process, args=(str(tmp_path), str(counter), queue))
             for _ in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert counter.read_text() == "build\n"
    assert sorted(results) == [(False, True), (False, True), (True, True)]


def test_key_validation():
    # the precision is checked once, where the user gives it: the engine's settings
    with pytest.raises(ConfigError, match=r"engine.precision: invalid value 'bf16'; expected "
                       r"one of \['fp16', 'fp32', 'int8'\]"):
        EngineSettings(precision="bf16")
    with pytest.raises(ValueError, match=r"'min', 'opt' and 'max'.*got \['max', 'min'\]"):
        replace(KEY, profile={"min": [1], "max": [1]})


def test_calibration_image_helpers(tmp_path):
    with pytest.raises(ValueError, match=r"calib holds no"):
        (tmp_path / "calib").mkdir()
        calibration_images(tmp_path / "calib")
    with pytest.raises(ValueError, match=r"nowhere does not exist"):
        calibration_images(tmp_path / "nowhere")
    bgr = np.zeros((20, 30, 3), np.uint8)
    bgr[..., 0] = 255  # pure blue in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "calib" / "a.png"), bgr)
    files = calibration_images(tmp_path / "calib")
    first_id = calibration_id(files)
    rgb = load_rgb(files[0])  # at its own size: the deploy graph resizes
    assert rgb.shape == (20, 30, 3)
    assert (rgb[..., 2] == 255).all() and (rgb[..., :2] == 0).all()
    cv2.imwrite(str(tmp_path / "calib" / "b.jpg"), bgr)
    files = calibration_images(tmp_path / "calib")
    assert [f.name for f in files] == ["a.png", "b.jpg"]
    assert calibration_id(files) != first_id and calibration_id(files).startswith("2 images")
