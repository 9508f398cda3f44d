"""The real TensorRT backend, engine cache and ``dudes build-engine`` driven through the test
stand-ins of TensorRT and cuda-python (tests/standins), compared with ONNX Runtime."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from dudes_ros.export.parity import parity_images
from dudes_ros.inference.factory import Choice, choose_backend, create_predictor
from dudes_ros.runtime.tensorrt_engine import EngineSettings
from tests.helpers import standins
from tests.helpers.export_models import write_student
from tests.helpers.probes import FixedProbe


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    return write_student(tmp_path_factory.mktemp("student"))


@pytest.fixture
def trt():
    """The stand-in ``tensorrt`` module, with cuda-python's, for one test."""
    with standins.installed():
        import tensorrt

        yield tensorrt


@pytest.fixture(scope="module")
def reference(student):
    with create_predictor(student[1], backend="onnxruntime", device="cpu") as ort:
        yield ort.predict


def settings(tmp_path, **changes) -> EngineSettings:
    return EngineSettings(max_batch=3, cache_dir=str(tmp_path / "cache"), **changes)


def test_outputs_equal_onnxruntime_and_memory_is_freed(trt, student, reference, tmp_path):
    from cuda.bindings import runtime

    predictor = create_predictor(student[1], engine=settings(tmp_path))
    assert predictor.backend == "tensorrt" and predictor.max_batch == 3
    assert "tensorrt and cuda-python are importable" in predictor.selected_because
    for shape in [(3, 64, 128), (1, 64, 128), (2, 50, 70), (1, 120, 300)]:
        images = parity_images(*shape, seed=sum(shape))
        labels, u = predictor.predict(images)
        ref_labels, ref_u = reference(images)
        assert labels.dtype == np.uint8 and u.dtype == np.float32
        np.testing.assert_array_equal(labels, ref_labels)
        np.testing.assert_allclose(u, ref_u, atol=1e-6)
    assert runtime.live_allocations("device") == 3 and runtime.live_allocations("host") == 3
    predictor.close()
    assert runtime.live_allocations("device") == 0 and runtime.live_allocations("host") == 0


def test_batch_and_size_outside_the_profile_are_refused_by_name(trt, student, tmp_path):
    predictor = create_predictor(student[1], engine=settings(tmp_path, max_size=(96, 160)))
    with pytest.raises(ValueError, match=r"batch of 4 frames.*at most 3 \(engine.max_batch\)"):
        predictor.predict(parity_images(4, 64, 128))
    problem = predictor.size_problem(100, 200)
    assert "100x200 is outside the TensorRT engine's profile 16x16..96x160" in problem
    with pytest.raises(ValueError, match="outside the TensorRT engine's profile"):
        predictor.predict(parity_images(1, 100, 200))
    assert predictor.size_problem(96, 160) is None
    predictor.close()


def test_standin_enforces_profile_bindings_and_version(trt, student, tmp_path):
    """What the stand-in refuses, as TensorRT does (so the backend cannot rely on less)."""
    predictor = create_predictor(student[1], engine=settings(tmp_path, max_size=(96, 160)))
    context = predictor.engine.create_execution_context()
    assert not context.set_input_shape("image", (1, 200, 100, 3))
    assert "outside the optimisation profile" in trt.log[-1]
    assert context.set_input_shape("image", (1, 64, 128, 3))
    assert not context.execute_async_v3(predictor.memory.stream_handle)
    assert "have no address" in trt.log[-1]
    engine_bytes = predictor.outcome.engine_path.read_bytes()
    predictor.close()
    trt.__version__ = "10.0.0-other"
    try:
        assert trt.Runtime(trt.Logger()).deserialize_cuda_engine(engine_bytes) is None
        assert "not compatible with this version of TensorRT" in trt.log[-1]
    finally:
        trt.__version__ = "10.99.0-standin"


def test_cache_hit_settings_coexist_and_rebuilds(trt, student, tmp_path):
    onnx_path = student[1]
    first = create_predictor(onnx_path, engine=settings(tmp_path))
    assert first.outcome.built
    engine = first.outcome.engine_path
    first.close()
    hit = create_predictor(onnx_path, engine=settings(tmp_path))
    assert not hit.outcome.built and hit.outcome.reason == "cache hit"
    assert hit.provenance()["engine"] == str(engine)
    hit.close()
    for changed in (settings(tmp_path, precision="fp32"), settings(tmp_path, opt_size=(96, 192)),
                    replace(settings(tmp_path), max_batch=2)):
        other = create_predictor(onnx_path, engine=changed)
        assert other.outcome.built and other.outcome.engine_path != engine
        other.close()
    engines = sorted(p.name for p in (tmp_path / "cache").glob("*.engine"))
    assert len(engines) == 4 and engine.name in engines, engines
    engine.write_bytes(b"not an engine")
    rebuilt = create_predictor(onnx_path, engine=settings(tmp_path))
    assert rebuilt.outcome.built and "sha256" in rebuilt.outcome.reason
    rebuilt.close()
    trt.__version__ = "10.1.0-upgraded"
    try:
        upgraded = create_predictor(onnx_path, engine=settings(tmp_path))
        assert upgraded.outcome.built and upgraded.outcome.engine_path != engine
        upgraded.close()
    finally:
        trt.__version__ = "10.99.0-standin"


def test_int8_calibration_cache_is_keyed_by_its_images(trt, student, tmp_path):
    import cv2

    sets = {}
    for name, seed in (("a", 1), ("b", 2)):
        folder = tmp_path / name
        folder.mkdir()
        for i, image in enumerate(parity_images(3, 64, 128, seed=seed)):
            cv2.imwrite(str(folder / f"{i}.png"), image)
        sets[name] = folder
    onnx_path = student[1]
    made = {}
    for name, folder in sets.items():
        predictor = create_predictor(onnx_path, engine=settings(
            tmp_path, precision="int8", calibration_folder=str(folder)))
        made[name] = (predictor.outcome.engine_path, predictor.key.calibration)
        predictor.close()
    assert made["a"][0] != made["b"][0] and made["a"][1] != made["b"][1]
    caches = sorted((tmp_path / "cache").glob("*.int8.calib"))
    assert len(caches) == 2, caches
    with pytest.raises(ValueError, match="calibration_folder.*precision 'int8' needs one"):
        EngineSettings(precision="int8")
    with pytest.raises(ValueError, match="only used with precision 'int8', not 'fp16'"):
        EngineSettings(calibration_folder=str(sets["a"]))


def test_build_engine_command_makes_the_file_the_backend_loads(trt, student, tmp_path,
                                                              capsys):
    from dudes_ros.cli import main as dudes

    cache = tmp_path / "cache"
    assert dudes(["build-engine", str(student[1]), "--max-batch", "3", "--max-size", "96x160",
                  "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "built in" in out and "'max': [3, 96, 160, 3]" in out
    builds = trt.builds
    predictor = create_predictor(student[1], engine=settings(tmp_path, max_size=(96, 160)))
    assert not predictor.outcome.built and trt.builds == builds
    assert str(predictor.outcome.engine_path) in out
    predictor.close()
    assert dudes(["build-engine", str(student[1]), "--max-batch", "3", "--max-size", "96x160",
                  "--cache-dir", str(cache)]) == 0
    assert "already cached and valid" in capsys.readouterr().out
    assert dudes(["build-engine", str(student[1]), "--device", "cuda:1"]) == 2
    assert "GPU 1 asked for, but cuda-python sees 1 GPU(s)" in capsys.readouterr().err


def test_build_engine_without_tensorrt_says_what_is_missing(student, capsys):
    if standins.importable_outside("tensorrt"):
        pytest.skip("a real tensorrt is installed")
    from dudes_ros.cli import main as dudes

    assert dudes(["build-engine", str(student[1])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dudes build-engine: tensorrt") and "not installed" in err


def test_tensorrt_path_imports_no_torch(student, tmp_path):
    code = (
        "import sys, numpy as np\n"
        "from dudes_ros.inference.factory import create_predictor\n"
        "from dudes_ros.runtime.tensorrt_engine import EngineSettings\n"
        f"p = create_predictor({str(student[1])!r}, "
        f"engine=EngineSettings(cache_dir={str(tmp_path)!r}))\n"
        "p.predict(np.zeros((1, 64, 128, 3), np.uint8))\n"
        "print(p.backend, 'torch' in sys.modules)\n")
    import os

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=standins.standin_env(dict(os.environ)), timeout=120)
    assert result.stdout.split() == ["tensorrt", "False"], result.stderr


# (GPUs, tensorrt + cuda-python, torch CUDA + onnx2torch, ORT providers) -> backend, device
DECISIONS = [
    (1, True, True, ("CUDA", "CPU"), "tensorrt", "cuda:0", False),
    (1, True, False, ("CPU",), "tensorrt", "cuda:0", False),
    (1, False, True, ("CUDA", "CPU"), "onnxruntime", "cuda:0", False),
    (1, False, False, ("CUDA", "CPU"), "onnxruntime", "cuda:0", False),
    (1, False, True, ("CPU",), "torch", "cuda:0", False),
    (1, False, True, (), "torch", "cuda:0", False),
    (1, False, False, ("CPU",), "onnxruntime", "cpu", True),
    (0, True, True, ("CUDA", "CPU"), "onnxruntime", "cpu", False),
    (0, False, False, ("CPU",), "onnxruntime", "cpu", False),
    (0, False, True, (), "torch", "cpu", False),
]


@pytest.mark.parametrize(("gpus", "trt_ok", "torch_ok", "providers", "backend", "device",
                          "fallback"), DECISIONS)
def test_auto_decision_table(student, gpus, trt_ok, torch_ok, providers, backend, device,
                             fallback):
    probe = FixedProbe(gpus, trt_ok, trt_ok, providers, torch_ok, torch_ok)
    choice = choose_backend(student[1], "auto", probe)
    assert (choice.backend, choice.device, choice.cpu_fallback) == (backend, device, fallback)
    if fallback:
        assert "tensorrt is not installed" in choice.reason
        assert "ONNX Runtime has no CUDA provider" in choice.reason
        assert "torch with CUDA and onnx2torch are not both installed" in choice.reason


def test_auto_honours_cuda_n_and_refuses_missing_gpus(student):
    probe = FixedProbe(gpus=2, tensorrt=True, cuda_python=True)
    assert choose_backend(student[1], "cuda:1", probe) == Choice(
        "tensorrt", "cuda:1", "tensorrt and cuda-python are importable and 2 CUDA GPU(s) are "
        "visible")
    with pytest.raises(RuntimeError, match=r"device 'cuda:2' asked for, but 2 CUDA GPU"):
        choose_backend(student[1], "cuda:2", probe)
    with pytest.raises(RuntimeError, match="'cuda' asked for, but no CUDA GPU is visible"):
        choose_backend(student[1], "cuda", FixedProbe(gpus=0))
    assert choose_backend(student[0], "cuda:1", probe).backend == "torch"


def test_auto_fallback_is_logged_at_warning(student, monkeypatch, caplog):
    import logging

    from dudes_ros.inference import factory

    monkeypatch.setattr(factory, "Probe", lambda: FixedProbe(gpus=1))
    with caplog.at_level(logging.INFO, logger="dudes_ros.inference.factory"):
        predictor = create_predictor(student[1])
    assert predictor.backend == "onnxruntime" and predictor.cpu_fallback
    record = next(r for r in caplog.records if "backend auto" in r.message)
    assert record.levelno == logging.WARNING and "no GPU path can run the model" in (
        record.message)


def test_onnxruntime_honours_cuda_n(student, monkeypatch):
    import onnxruntime

    from dudes_ros.inference.onnxruntime_backend import OnnxRuntimePredictor

    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CPUExecutionProvider"])  # as onnxruntime without CUDA
    with pytest.raises(RuntimeError, match=r"device 'cuda:1' asked for, but ONNX Runtime"):
        OnnxRuntimePredictor(student[1], device="cuda:1")
    seen = {}
    real_session = onnxruntime.InferenceSession

    def session(path, options, providers):
        seen["providers"] = providers
        return real_session(path, options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    OnnxRuntimePredictor(student[1], device="cuda:1")
    assert seen["providers"][0] == ("CUDAExecutionProvider", {"device_id": 1})


def test_torch_runs_the_onnx_graph_like_onnxruntime(student, reference):
    pytest.importorskip("onnx2torch")
    predictor = create_predictor(student[1], backend="torch", device="cpu")
    assert predictor.provenance()["runs"] == "onnx2torch"
    images = parity_images(2, 50, 70, seed=9)
    labels, u = predictor.predict(images)
    ref_labels, ref_u = reference(images)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(u, ref_u, atol=1e-5)
    with pytest.raises(ValueError, match="fp16 needs a student checkpoint"):
        create_predictor(student[1], backend="torch", device="cpu", fp16=True)


def test_engine_manifest_records_the_whole_key(trt, student, tmp_path):
    predictor = create_predictor(student[1], engine=settings(tmp_path, opt_size=(96, 192)))
    manifest = json.loads(predictor.outcome.engine_path.with_suffix(".engine.json")
                          .read_text())
    assert manifest["key"]["profile"]["opt"] == [3, 96, 192, 3]
    assert predictor.key.digest()[:12] in predictor.outcome.engine_path.name
    predictor.close()


def test_doctor_reports_what_auto_chooses(trt, capsys):
    from dudes_ros.cli import main as dudes

    assert dudes(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "auto_backend" in out and "tensorrt on cuda:0: tensorrt and cuda-python are " \
        "importable and 1 CUDA GPU(s) are visible" in out
