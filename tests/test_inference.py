"""Backends and the factory: same outputs everywhere, auto selection, bad input and files."""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pytest
import torch

from dudes_ros.export.parity import parity_images
from dudes_ros.inference.factory import choose_backend, create_predictor
from dudes_ros.inference.onnxruntime_backend import ModelFileError, OnnxRuntimePredictor
from dudes_ros.inference.torch_backend import TorchPredictor
from dudes_ros.runtime.manifest import ManifestError, manifest_path
from tests.helpers.export_models import tiny_student, write_student
from tests.helpers.probes import FixedProbe


@pytest.fixture(scope="module")
def student_files(tmp_path_factory):
    torch.set_num_threads(1)
    return write_student(tmp_path_factory.mktemp("student"))


@pytest.fixture(scope="module")
def predictors(student_files):
    ckpt, onnx_path = student_files
    ort = create_predictor(onnx_path, backend="onnxruntime", device="cpu", threads=1)
    eager = create_predictor(ckpt, device="cpu")
    yield ort, eager
    ort.close()
    eager.close()


@pytest.mark.parametrize("shape", [(1, 64, 128), (3, 64, 128), (1, 100, 150), (2, 37, 203)])
def test_onnxruntime_matches_torch_checkpoint(predictors, shape):
    """Parity on synthetic frames; 100x150 and 37x203 are no multiples of 16: the in-graph
    resize handles them (they are not refused)."""
    ort, eager = predictors
    images = parity_images(*shape, seed=5)
    ort_labels, ort_u = ort.predict(images)
    torch_labels, torch_u = eager.predict(images)
    assert ort_labels.shape == torch_labels.shape == ort_u.shape == shape
    assert ort_labels.dtype == torch_labels.dtype == np.uint8
    assert ort_u.dtype == torch_u.dtype == np.float32
    assert np.mean(ort_labels == torch_labels) >= 0.999
    assert np.abs(ort_u - torch_u).max() <= 1e-3
    assert ort_labels.max() < 19
    assert 0.0 <= ort_u.min() and ort_u.max() <= 1.0
    assert len(np.unique(torch_labels)) > 1  # a real prediction, not a constant map


def test_batch_items_are_independent(predictors):
    ort, _ = predictors
    images = parity_images(3, 64, 128, seed=9)
    batch_labels, batch_u = ort.predict(images)
    single_labels, single_u = ort.predict(images[1:2])
    assert np.array_equal(batch_labels[1], single_labels[0])
    np.testing.assert_allclose(batch_u[1], single_u[0], atol=1e-6)


def test_auto_selection_is_logged(student_files, caplog):
    ckpt, onnx_path = student_files
    with caplog.at_level(logging.INFO, logger="dudes_ros.inference.factory"):
        predictor = create_predictor(onnx_path, device="cpu")
    assert predictor.backend == "onnxruntime"
    assert "backend auto: chose onnxruntime on cpu because" in caplog.text
    assert "device is 'cpu'" in predictor.provenance()["selected_because"]
    assert predictor.provenance()["onnx_sha256"] == json.loads(
        manifest_path(onnx_path).read_text())["onnx_sha256"]
    assert choose_backend(ckpt).backend == "torch"
    reason = choose_backend(onnx_path, device="auto", probe=FixedProbe(gpus=0)).reason
    assert "no CUDA GPU is visible" in reason


@pytest.mark.parametrize("bad, message", [
    (np.zeros((1, 8, 8, 3), np.float32), r"expected dtype uint8.*got dtype float32"),
    (np.zeros((8, 8, 3), np.uint8), r"expected shape \[B, H, W, 3\].*got \(8, 8, 3\)"),
    (np.zeros((1, 8, 8, 4), np.uint8), r"expected shape \[B, H, W, 3\].*got \(1, 8, 8, 4\)"),
    ([[1, 2, 3]], r"expected a numpy array uint8 \[B, H, W, 3\], got list"),
])
def test_bad_input_names_expected_and_actual(predictors, bad, message):
    for predictor in predictors:
        with pytest.raises(ValueError, match=message):
            predictor.predict(bad)


def test_missing_and_corrupt_model_files_are_named(tmp_path, student_files):
    _, onnx_path = student_files
    with pytest.raises(FileNotFoundError, match=r"absent\.onnx not found"):
        create_predictor(tmp_path / "absent.onnx")
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(onnx_path.read_bytes())
    with pytest.raises(ManifestError, match=r"copy\.json not found"):
        OnnxRuntimePredictor(copy, device="cpu")
    manifest = json.loads(manifest_path(onnx_path).read_text())
    manifest_path(copy).write_text(json.dumps(manifest))
    copy.write_bytes(onnx_path.read_bytes()[:1000])  # truncated
    with pytest.raises(ModelFileError, match=r"copy\.onnx does not match its manifest"):
        OnnxRuntimePredictor(copy, device="cpu")
    manifest["onnx_sha256"] = hashlib.sha256(copy.read_bytes()).hexdigest()
    manifest_path(copy).write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match=r"copy\.onnx cannot be loaded by ONNX Runtime"):
        OnnxRuntimePredictor(copy, device="cpu")


def test_factory_refuses_mismatches(tmp_path, student_files):
    ckpt, onnx_path = student_files
    with pytest.raises(ValueError, match=r"backend 'onnxruntime' cannot run .*student\.pt"):
        create_predictor(ckpt, backend="onnxruntime")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['precision'\].*'threads'"):
        create_predictor(onnx_path, backend="onnxruntime", precision="fp16")
    with pytest.raises(ValueError, match=r"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        create_predictor(onnx_path, device="gpu0")
    with pytest.raises(ValueError, match="backend must be one of"):
        create_predictor(onnx_path, backend="tensorflow")
    other = tmp_path / "weights.bin"
    other.write_bytes(b"")
    with pytest.raises(ValueError, match=r"expected a \.onnx .* got suffix '\.bin'"):
        create_predictor(other)


def test_torch_backend_refuses_gpu_options_on_cpu():
    with pytest.raises(ValueError, match="fp16 and cuda_graphs need a CUDA device"):
        TorchPredictor(tiny_student(), device="cpu", fp16=True)


@pytest.mark.gpu
def test_torch_cuda_fp16_graphs_match_onnxruntime(predictors, student_files):
    ort, _ = predictors
    ckpt, _ = student_files
    gpu = create_predictor(ckpt, backend="torch", device="cuda")
    assert gpu.provenance()["fp16"] and gpu.provenance()["cuda_graphs"]
    for shape in [(1, 64, 128), (3, 64, 128), (1, 100, 150)]:
        images = parity_images(*shape, seed=3)
        first = gpu.predict(images)
        second = gpu.predict(images)  # graph replay
        assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
        ref_labels, ref_u = ort.predict(images)
        assert np.mean(first[0] == ref_labels) >= 0.99  # fp16 vs fp32
        assert np.abs(first[1] - ref_u).max() <= 1e-2
    fp32 = create_predictor(ckpt, backend="torch", device="cuda", fp16=False, cuda_graphs=False)
    images = parity_images(3, 64, 128, seed=4)
    labels, u = fp32.predict(images)
    ref_labels, ref_u = ort.predict(images)
    assert np.mean(labels == ref_labels) >= 0.999
    assert np.abs(u - ref_u).max() <= 1e-3


@pytest.mark.tensorrt
def test_tensorrt_matches_onnxruntime_and_rebuilds_corrupt_engine(predictors, student_files,
                                                                   tmp_path):
    from dudes_ros.runtime.tensorrt_engine import EngineSettings

    ort, _ = predictors
    _, onnx_path = student_files
    engine = EngineSettings(precision="fp32", max_batch=3, cache_dir=str(tmp_path))
    trt = create_predictor(onnx_path, backend="tensorrt", engine=engine)
    assert trt.outcome.built
    images = parity_images(3, 64, 128, seed=6)
    labels, u = trt.predict(images)
    ref_labels, ref_u = ort.predict(images)
    assert np.mean(labels == ref_labels) >= 0.999 and np.abs(u - ref_u).max() <= 1e-3
    path = trt.outcome.engine_path
    trt.close()
    path.write_bytes(b"not an engine")
    again = create_predictor(onnx_path, backend="tensorrt", engine=engine)
    assert again.outcome.built and "sha256" in again.outcome.reason
    cached = create_predictor(onnx_path, backend="tensorrt", engine=engine)
    assert not cached.outcome.built
