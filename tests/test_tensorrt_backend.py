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
def trt(trt_standin):
    """The stand-in ``tensorrt`` module (with cuda-python's), once per TensorRT version."""
    return trt_standin


@pytest.fixture(scope="module")
def reference(student):
    with create_predictor(student[1], backend="onnxruntime", device="cpu") as ort:
        yield ort.predict


def settings(tmp_path, **changes) -> EngineSettings:
    return EngineSettings(max_batch=3, cache_dir=str(tmp_path / "cache"), **changes)


def _standin_module():
    import sys

    return sys.modules["tensorrt._standin"]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_outputs_equal_onnxruntime_on_the_variant_and_memory_is_freed(trt, student, tmp_path,
                                                                      precision):
    from cuda.bindings import runtime

    predictor = create_predictor(student[1], engine=settings(tmp_path, precision=precision))
    assert predictor.backend == "tensorrt" and predictor.max_batch == 3
    assert "tensorrt and cuda-python are importable" in predictor.selected_because
    assert predictor.engine._header["strongly_typed"] and predictor.engine._header["flags"] == []
    assert predictor.engine._header["precision"] == precision
    # The engine computes the variant (the stand-in runs it with ONNX Runtime).
    with create_predictor(predictor.variant.path, backend="onnxruntime", device="cpu") as ort:
        for shape in [(3, 64, 128), (1, 64, 128), (2, 50, 70), (1, 120, 300)]:
            images = parity_images(*shape, seed=sum(shape))
            labels, u = predictor.predict(images)
            ref_labels, ref_u = ort.predict(images)
            assert labels.dtype == np.uint8 and u.dtype == np.float32
            np.testing.assert_array_equal(labels, ref_labels)
            np.testing.assert_allclose(u, ref_u, atol=1e-6)
    # image, labels, uncertainty and the context's scratch memory
    assert runtime.live_allocations("device") == 4 and runtime.live_allocations("host") == 3
    predictor.close()
    assert runtime.live_allocations("device") == 0 and runtime.live_allocations("host") == 0


def test_fp32_engine_equals_onnxruntime_fp32(trt, student, reference, tmp_path):
    predictor = create_predictor(student[1], engine=settings(tmp_path, precision="fp32"))
    assert predictor.variant.path == student[1]
    images = parity_images(2, 64, 128, seed=3)
    labels, u = predictor.predict(images)
    ref_labels, ref_u = reference(images)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(u, ref_u, atol=1e-6)
    predictor.close()


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


def test_context_memory_grows_with_the_shapes_seen_not_the_profile(trt, student, tmp_path):
    """Defect 5: a STATIC context reserves the profile's largest shape (4K x max_batch)."""
    standin = _standin_module()
    predictor = create_predictor(student[1], engine=settings(tmp_path))  # profile up to 4K
    assert predictor.provenance()["context_device_memory_bytes"] == 0
    largest = standin.activation_bytes((3, 2160, 3840, 3))
    assert standin.reserved_bytes() < largest / 50  # the weights only, not the largest shape
    predictor.predict(parity_images(1, 64, 128))
    small = predictor.provenance()["context_device_memory_bytes"]
    assert small == standin.activation_bytes((1, 64, 128, 3))
    predictor.predict(parity_images(3, 120, 300))
    grown = predictor.provenance()["context_device_memory_bytes"]
    assert grown == standin.activation_bytes((3, 120, 300, 3)) > small
    predictor.predict(parity_images(1, 64, 128))  # a smaller shape reuses the buffer
    assert predictor.provenance()["context_device_memory_bytes"] == grown
    assert predictor.provenance()["engine_device_memory_max_bytes"] == largest > 50 * grown
    predictor.close()


def test_a_context_that_cannot_be_created_is_refused_with_the_reason(trt, student, tmp_path,
                                                                      monkeypatch):
    engine_type = _standin_module().ICudaEngine
    monkeypatch.setattr(engine_type, "create_execution_context", lambda self, strategy: None)
    from cuda.bindings import runtime

    with pytest.raises(RuntimeError, match="could not create an execution context"):
        create_predictor(student[1], engine=settings(tmp_path))
    assert runtime.live_allocations("device") == 0  # nothing leaked


def test_prediction_in_another_thread_on_gpu_1(trt, student, tmp_path, monkeypatch):
    """Defect 4: CUDA's current device is per host thread; the node predicts in a worker."""
    import threading

    from cuda.bindings import runtime

    monkeypatch.setattr(runtime, "DEVICE_COUNT", 2)
    predictor = create_predictor(student[1], device="cuda:1", engine=settings(tmp_path))
    assert predictor.key.gpu_name and predictor.provenance()["gpu"] == 1
    results = {}

    def worker() -> None:  # a new thread starts on device 0, as in CUDA
        results["device_before"] = runtime.current_device()
        results["labels"] = predictor.predict(parity_images(1, 64, 128))[0]
        predictor.close()
        results["device_after"] = runtime.current_device()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert results["device_before"] == 0 and results["device_after"] == 1
    assert results["labels"].shape == (1, 64, 128)
    assert runtime.live_allocations("device") == 0


def test_unsupported_tensorrt_is_refused_naming_found_and_supported(trt, student, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setattr(trt, "__version__", "8.6.1")
    with pytest.raises(RuntimeError, match=r"TensorRT 8\.6\.1 is installed; this package "
                       r"supports TensorRT 10\.3 or newer 10\.x \(JetPack 6\.1/6\.2\) or 11\.x"):
        create_predictor(student[1], engine=settings(tmp_path))
    monkeypatch.setattr(trt, "__version__", "10.0.1")
    with pytest.raises(RuntimeError, match="TensorRT 10.0.1 is installed"):
        create_predictor(student[1], engine=settings(tmp_path))


def test_backend_tensorrt_with_device_cpu_says_what_to_do(trt, student):
    with pytest.raises(ValueError, match="backend 'tensorrt' runs only on a CUDA GPU, but device "
                       "is 'cpu'"):
        create_predictor(student[1], backend="tensorrt", device="cpu")


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
    version = trt.__version__
    trt.__version__ = version.split(".")[0] + ".99.0"  # an upgrade within the major
    try:
        upgraded = create_predictor(onnx_path, engine=settings(tmp_path))
        assert upgraded.outcome.built and upgraded.outcome.engine_path != engine
        upgraded.close()
    finally:
        trt.__version__ = version


def test_int8_variants_and_engines_are_keyed_by_their_images(trt, student, tmp_path):
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
        assert predictor.engine._header["precision"] == "int8"  # Q/DQ in the ONNX
        assert predictor.engine._header["flags"] == []  # no INT8 flag, no calibrator
        made[name] = (predictor.outcome.engine_path, predictor.key.calibration,
                      predictor.variant.path)
        predictor.close()
    assert len({m[0] for m in made.values()}) == 2 and made["a"][1] != made["b"][1]
    assert sorted(p.name for p in (tmp_path / "cache").glob("student.int8.*.onnx")) == sorted(
        m[2].name for m in made.values())
    with pytest.raises(ValueError, match="calibration_folder.*precision 'int8' needs one"):
        EngineSettings(precision="int8")
    with pytest.raises(ValueError, match="only used with precision 'int8', not 'fp16'"):
        EngineSettings(calibration_folder=str(sets["a"]))


def test_build_engine_command_makes_the_file_the_backend_loads(trt, student, tmp_path,
                                                              capsys):
    from dudes_ros.cli import main as dudes

    standin = _standin_module()
    cache = tmp_path / "cache"
    assert dudes(["build-engine", str(student[1]), "--max-batch", "3", "--max-size", "96x160",
                  "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "built in" in out and "'max': [3, 96, 160, 3]" in out
    assert f"TensorRT {trt.__version__}" in out
    builds = standin.builds
    predictor = create_predictor(student[1], engine=settings(tmp_path, max_size=(96, 160)))
    assert not predictor.outcome.built and standin.builds == builds
    assert str(predictor.outcome.engine_path) in out
    predictor.close()
    assert dudes(["build-engine", str(student[1]), "--max-batch", "3", "--max-size", "96x160",
                  "--cache-dir", str(cache)]) == 0
    assert "already cached and valid" in capsys.readouterr().out
    assert dudes(["build-engine", str(student[1]), "--device", "cuda:1"]) == 2
    assert "GPU 1 asked for, but cuda-python sees 1 GPU(s)" in capsys.readouterr().err


def test_build_engine_on_gpu_n_builds_there(trt, student, tmp_path, monkeypatch, capsys):
    """Defect 4: build-engine named the engine after GPU N but built on GPU 0."""
    from cuda.bindings import runtime

    from dudes_ros.cli import main as dudes

    monkeypatch.setattr(runtime, "DEVICE_COUNT", 2)
    assert dudes(["build-engine", str(student[1]), "--device", "cuda:1", "--max-size",
                  "96x160", "--cache-dir", str(tmp_path / "cache")]) == 0
    capsys.readouterr()
    predictor = create_predictor(student[1], device="cuda:1", engine=replace(
        settings(tmp_path, max_size=(96, 160)), max_batch=1))
    assert not predictor.outcome.built and predictor.engine._device == 1
    predictor.predict(parity_images(1, 64, 128))
    predictor.close()


def test_build_engine_with_a_driver_too_old_says_so(trt, student, monkeypatch, capsys):
    from cuda.bindings import runtime

    from dudes_ros.cli import main as dudes
    from dudes_ros.runtime import cuda

    monkeypatch.setattr(runtime, "DEVICE_COUNT_ERROR",
                        runtime.cudaError_t.cudaErrorInsufficientDriver)
    monkeypatch.setattr(cuda, "driver_present", lambda: True)  # a driver, but an old one
    assert dudes(["build-engine", str(student[1])]) == 2
    err = capsys.readouterr().err
    assert "no GPU is usable here" in err and "cudaErrorInsufficientDriver" in err
    assert "the NVIDIA driver is too old for cuda-bindings" in err


def test_build_engine_without_tensorrt_says_what_is_missing(student, capsys):
    if standins.importable_outside("tensorrt"):
        pytest.skip("a real tensorrt is installed")
    from dudes_ros.cli import main as dudes

    assert dudes(["build-engine", str(student[1])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dudes build-engine: the TensorRT backend needs NVIDIA's TensorRT")
    assert "TensorRT 10.3 or newer 10.x (JetPack 6.1/6.2) or 11.x" in err
    assert "pip install" in err and "JetPack" in err


def test_tensorrt_path_imports_no_torch(student, tmp_path, trt_version):
    code = (
        "import sys, numpy as np\n"
        "from dudes_ros.inference.factory import create_predictor\n"
        "from dudes_ros.runtime.tensorrt_engine import EngineSettings\n"
        f"p = create_predictor({str(student[1])!r}, "
        f"engine=EngineSettings(precision='fp32', cache_dir={str(tmp_path)!r}))\n"
        "p.predict(np.zeros((1, 64, 128, 3), np.uint8))\n"
        "print(p.backend, 'torch' in sys.modules)\n")
    import os

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=standins.standin_env(dict(os.environ), trt_version),
                            timeout=120)
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


def test_a_failed_gpu_count_is_unknown_not_zero(student):
    """Defect 3: cuda-python 13 on an older driver failed every call, read as 0 GPUs."""
    unknown = FixedProbe(None, True, True, counted_by="cuda-python could not count the GPUs "
                         "(cudaGetDeviceCount failed: cudaErrorInsufficientDriver ...); the "
                         "NVIDIA driver's device files exist but nothing could count the GPUs")
    choice = choose_backend(student[1], "auto", unknown)
    assert (choice.backend, choice.device, choice.cpu_fallback) == ("onnxruntime", "cpu", True)
    assert "the GPU state is unknown" in choice.reason
    assert "cudaErrorInsufficientDriver" in choice.reason
    with pytest.raises(RuntimeError, match="'cuda' asked for, but the GPU state is unknown"):
        choose_backend(student[1], "cuda", unknown)
    # torch counted the GPU after cuda-python failed: a GPU path, not TensorRT (its memory is
    # cuda-python's)
    torch_counted = FixedProbe(1, True, True, ("CPU",), True, True,
                               counted_by="cuda-python could not count the GPUs (...); torch")
    choice = choose_backend(student[1], "auto", torch_counted)
    assert (choice.backend, choice.device) == ("torch", "cuda:0")
    assert "cuda-python does not work" in choice.reason
    # no GPU on a machine with the NVIDIA driver: a fallback to warn about
    assert choose_backend(student[1], "auto", FixedProbe(0, driver_present=True)).cpu_fallback


def test_probe_goes_on_to_torch_when_cuda_python_fails(monkeypatch):
    from dudes_ros.inference import factory
    from dudes_ros.runtime import cuda

    monkeypatch.setattr(cuda, "bindings_available", lambda: True)
    monkeypatch.setattr(cuda, "gpu_count", lambda: cuda.GpuCount(
        None, "cudaGetDeviceCount failed: cudaErrorInsufficientDriver"))
    monkeypatch.setattr(factory.Probe, "driver_present", True)
    monkeypatch.setattr(factory, "_importable", lambda name: False)
    count, why = factory.Probe().gpus
    assert count is None and "cudaErrorInsufficientDriver" in why
    assert "nothing could count the GPUs" in why
    monkeypatch.setattr(factory.Probe, "driver_present", False)
    count, why = factory.Probe().gpus
    assert count == 0 and "no NVIDIA driver device" in why


def test_cuda_errors_name_the_error_and_the_cause(trt, monkeypatch):
    from cuda.bindings import runtime

    from dudes_ros.runtime import cuda

    monkeypatch.setattr(runtime, "DEVICE_COUNT_ERROR",
                        runtime.cudaError_t.cudaErrorInsufficientDriver)
    monkeypatch.setattr(cuda, "bindings_version", lambda: "13.0.1")
    monkeypatch.setattr(cuda, "driver_present", lambda: True)
    counted = cuda.gpu_count()
    assert counted.count is None
    assert "cudaErrorInsufficientDriver" in counted.error
    assert "too old for cuda-bindings 13.0.1, which needs driver 580 or newer" in counted.error
    monkeypatch.setattr(cuda, "driver_present", lambda: False)  # CUDA's word for "no driver"
    assert "no NVIDIA driver is loaded here" in cuda.gpu_count().error
    monkeypatch.setattr(runtime, "DEVICE_COUNT_ERROR", runtime.cudaError_t.cudaErrorNoDevice)
    assert cuda.gpu_count().count == 0
    with pytest.raises(cuda.CudaError, match="cuda-python sees 0 GPU"):
        cuda.gpu_info(0)


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


def test_cuda_python_extras_follow_the_cuda_major():
    """Defect 3: the extra pinned cuda-python>=12.6, which resolves to 13.x (driver 580+)."""
    import ast
    from pathlib import Path

    from dudes_ros.runtime import cuda

    tree = ast.parse((Path(__file__).resolve().parents[1] / "setup.py").read_text())
    (extras,) = [node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                 and getattr(node.targets[0], "id", "") == "EXTRAS"]
    pins = {ast.literal_eval(k): ast.literal_eval(v) for k, v in zip(extras.keys, extras.values,
                                                                       strict=True)}
    assert "cuda-python>=12.6.1,<13" in pins["tensorrt-cu12"]
    assert "cuda-python>=13,<14" in pins["tensorrt-cu13"]
    assert "tensorrt" not in pins  # no extra that lets pip pick the CUDA major
    assert set(cuda.MIN_DRIVER) == {12, 13}
