"""Export of the deploy graph: ONNX validity, parity with eager, manifest, CLI, failure modes."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from dudes_ros import labels
from dudes_ros.cli import main as dudes
from dudes_ros.config import to_dict
from dudes_ros.export import onnx_export
from dudes_ros.export.parity import ParityError, ParityReport, check_parity, compare
from dudes_ros.model.checkpoint import save_checkpoint
from dudes_ros.model.config import ModelConfig
from dudes_ros.model.student import SegmentationNet, normalize
from dudes_ros.runtime.deploy import DeployModel
from dudes_ros.runtime.manifest import (
    ManifestError,
    load_manifest,
    manifest_path,
    sha256_file,
    update_ood_calibration,
    write_manifest,
)
from tests.helpers.export_models import METADATA, TINY, tiny_student


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny student checkpoint exported through ``dudes export``."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("export")
    ckpt = save_checkpoint(folder / "student.pt", tiny_student(), role="student",
                           metadata=METADATA)
    assert dudes(["export", str(ckpt), "-o", str(folder / "model.onnx"), "--name", "tiny"]) == 0
    return ckpt, folder / "model.onnx"


def test_deploy_model_matches_manual_pipeline_at_network_size():
    net = tiny_student()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 64, 128, 3), dtype=np.uint8)
    with torch.no_grad():
        lab, unc = DeployModel(net).eval()(torch.from_numpy(images))
        logits, u = net(normalize(torch.from_numpy(images), TINY))
    assert lab.dtype == torch.uint8 and unc.dtype == torch.float32
    assert torch.equal(lab, logits.argmax(1).to(torch.uint8))
    torch.testing.assert_close(unc, u[:, 0], atol=1e-6, rtol=0)
    # always_resize (the exported path) is the identity resize at the network size
    with torch.no_grad():
        lab2, unc2 = DeployModel(net, always_resize=True).eval()(torch.from_numpy(images))
    assert torch.equal(lab, lab2)
    torch.testing.assert_close(unc, unc2, atol=1e-6, rtol=0)


def test_deploy_model_handles_any_size_and_refuses_teachers():
    net = tiny_student()
    with torch.no_grad():
        lab, unc = DeployModel(net).eval()(torch.zeros(1, 37, 53, 3, dtype=torch.uint8))
    assert lab.shape == unc.shape == (1, 37, 53)
    assert int(lab.max()) < labels.NUM_CLASSES
    assert float(unc.min()) >= 0.0 and float(unc.max()) <= 1.0
    member = SegmentationNet(ModelConfig(decoder_channels=16, input_size=(64, 128),
                                         uncertainty_head=False))
    with pytest.raises(ValueError, match="uncertainty head"):
        DeployModel(member)


def test_exported_graph_is_valid_with_dynamic_axes(exported):
    _, onnx_path = exported
    model = onnx.load(str(onnx_path))
    onnx.checker.check_model(model, full_check=True)
    (inp,) = model.graph.input
    assert inp.name == "image"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", "height", "width", 3]
    outputs = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    assert outputs == {"labels": onnx.TensorProto.UINT8,
                       "uncertainty": onnx.TensorProto.FLOAT}
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17


def test_manifest_content(exported):
    ckpt, onnx_path = exported
    manifest = load_manifest(onnx_path)
    assert manifest_path(onnx_path) == onnx_path.with_suffix(".json")
    assert manifest["model_name"] == "tiny"
    assert manifest["onnx_sha256"] == sha256_file(onnx_path)
    assert manifest["classes"] == labels.as_manifest()
    assert len(manifest["classes"]) == 19
    assert manifest["model_config"] == to_dict(TINY)
    assert manifest["input"]["network_input_size"] == [64, 128]
    assert manifest["input"]["dtype"] == "uint8" and manifest["input"]["color"] == "RGB"
    assert manifest["normalization"]["mean"] == list(TINY.mean)
    assert manifest["outputs"]["uncertainty"]["range"] == [0.0, 1.0]
    assert manifest["ood"] == {"pixel_threshold": None, "frame_threshold": None,
                               "false_alarm_rate": None, "data": None}
    assert manifest["training"] == METADATA
    assert manifest["source"]["checkpoint_sha256"] == sha256_file(ckpt)
    assert manifest["exporter"]["torch"] == torch.__version__
    shapes = [c["shape"] for c in manifest["parity"]["checks"]]
    assert shapes == [[1, 64, 128, 3], [3, 64, 128, 3], [2, 51, 101, 3]]
    for check in manifest["parity"]["checks"]:
        assert check["label_agreement"] >= 0.999 and check["max_uncertainty_diff"] <= 1e-3


def test_update_ood_calibration_merges_and_validates(tmp_path, exported):
    _, src = exported
    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(b"x")
    write_manifest(onnx_path, load_manifest(src))
    updated = update_ood_calibration(onnx_path, {"pixel_threshold": 0.25,
                                                 "frame_threshold": 0.05,
                                                 "false_alarm_rate": 0.01, "data": "synthetic"})
    assert load_manifest(onnx_path)["ood"] == updated["ood"] == {
        "pixel_threshold": 0.25, "frame_threshold": 0.05, "false_alarm_rate": 0.01,
        "data": "synthetic"}
    assert load_manifest(onnx_path)["classes"] == labels.as_manifest()
    with pytest.raises(ValueError, match=r"pixel_threshold.*\[0, 1\].*1\.5"):
        update_ood_calibration(onnx_path, {"pixel_threshold": 1.5})
    assert load_manifest(onnx_path)["ood"]["pixel_threshold"] == 0.25
    assert not list(tmp_path.glob("*.tmp"))


def test_load_manifest_errors_name_the_file(tmp_path):
    onnx_path = tmp_path / "m.onnx"
    with pytest.raises(ManifestError, match=r"m\.json not found"):
        load_manifest(onnx_path)
    manifest_path(onnx_path).write_text("{not json")
    with pytest.raises(ManifestError, match=r"m\.json is not valid JSON"):
        load_manifest(onnx_path)
    manifest_path(onnx_path).write_text(json.dumps({"format_version": 1}))
    with pytest.raises(ManifestError, match=r"m\.json lacks key\(s\) \['model_name'"):
        load_manifest(onnx_path)


def test_compare_counts_exact_agreement():
    labels_a = np.zeros((1, 10, 10), np.uint8)
    labels_b = labels_a.copy()
    labels_b[0, 0, :3] = 1
    u_a = np.zeros((1, 10, 10), np.float32)
    u_b = u_a.copy()
    u_b[0, 5, 5] = 0.25
    report = compare(lambda x: (labels_a, u_a), lambda x: (labels_b, u_b),
                     np.zeros((1, 10, 10, 3), np.uint8))
    assert report == ParityReport((1, 10, 10, 3), 0.97, 0.25)
    assert not report.passed()
    assert ParityReport((1,), 0.999, 1e-3).passed()


def test_check_parity_raises_with_numbers():
    def good(x):
        return np.zeros(x.shape[:3], np.uint8), np.zeros(x.shape[:3], np.float32)

    def off(x):
        return np.zeros(x.shape[:3], np.uint8), np.full(x.shape[:3], 0.01, np.float32)

    assert len(check_parity(good, good, [(1, 8, 8), (3, 9, 11)])) == 2
    with pytest.raises(ParityError, match=r"shape \[1, 8, 8, 3\].*max \|du\| = 1\.00e-02"):
        check_parity(good, off, [(1, 8, 8)])


def test_failed_parity_writes_nothing_and_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous good model")
    real_runner = onnx_export.onnxruntime_runner

    def broken_runner(path):
        run = real_runner(path)

        def flipped(images):
            lab, unc = run(images)
            return (lab + 1).astype(np.uint8), unc
        return flipped

    monkeypatch.setattr(onnx_export, "onnxruntime_runner", broken_runner)
    with pytest.raises(ParityError, match="labels agree on 0.00000%"):
        onnx_export.export_onnx(tiny_student(), target, parity_shapes=[(1, 64, 128)])
    assert target.read_bytes() == b"previous good model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_export_cli_refuses_member_and_bad_path(tmp_path, capsys):
    member = SegmentationNet(ModelConfig(decoder_channels=16, input_size=(64, 128),
                                         uncertainty_head=False))
    ckpt = save_checkpoint(tmp_path / "member.pt", member, role="member", metadata={})
    assert dudes(["export", str(ckpt)]) == 2
    assert "'member'" in capsys.readouterr().err
    assert dudes(["export", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt does not exist" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.onnx"))


def test_one_normalisation_for_training_and_the_deploy_graph():
    from dudes_ros.model.student import normalization, normalize
    from dudes_ros.runtime.deploy import DeployModel

    images = torch.randint(0, 256, (2, 5, 6, 3), dtype=torch.uint8)
    mean = torch.tensor(TINY.mean).view(1, 3, 1, 1)
    std = torch.tensor(TINY.std).view(1, 3, 1, 1)
    expected = (images.permute(0, 3, 1, 2).float() / 255.0 - mean) / std
    torch.testing.assert_close(normalize(images, TINY), expected, atol=1e-6, rtol=0)
    deploy = DeployModel(tiny_student())
    scale, shift = normalization(TINY)
    assert torch.equal(deploy.scale, scale) and torch.equal(deploy.shift, shift)
