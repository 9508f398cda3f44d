"""`dudes calibrate` writes thresholds only into a model someone named: --model (in place) or
--output NEW.onnx (a calibrated copy); never into the bundled model by default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dudes_ros import cli
from dudes_ros.data.synthetic import write_cityscapes_layout
from dudes_ros.resources import bundled_model
from dudes_ros.runtime.manifest import check_onnx_file, manifest_path

CALIBRATE = ["calibrate", "--false-alarm-rate", "0.5", "--backend", "onnxruntime",
             "--device", "cpu"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cityscapes")
    write_cityscapes_layout(root, "val", 2, seed=7, size=(64, 128), anomaly_fraction=0.0)
    return root


def test_without_model_output_or_dry_run_nothing_is_written(data_root, capsys, monkeypatch):
    import dudes_ros.inference.factory as factory

    monkeypatch.setattr(factory, "create_predictor",
                        lambda *a, **k: pytest.fail("refused only after loading the model"))
    bundled = bundled_model()
    before = manifest_path(bundled).read_bytes()
    assert cli.main([*CALIBRATE, "--data", str(data_root)]) == 2
    err = capsys.readouterr().err
    assert err == (f"dudes calibrate: no model to write the thresholds into: the bundled model "
                   f"{bundled} is never rewritten; pass --output NEW.onnx for a calibrated "
                   "copy of it, --model STUDENT.onnx to update that model's manifest in place, "
                   "or --dry-run to only print the thresholds\n")
    assert manifest_path(bundled).read_bytes() == before


def test_output_writes_a_calibrated_copy_and_leaves_the_bundled_model(data_root, tmp_path,
                                                                      capsys):
    bundled = bundled_model()
    before = manifest_path(bundled).read_bytes()
    output = tmp_path / "mine" / "student.onnx"
    assert cli.main([*CALIBRATE, "--data", str(data_root), "--output", str(output)]) == 0
    assert f"wrote {output} (a copy of {bundled})" in capsys.readouterr().out
    assert manifest_path(bundled).read_bytes() == before
    assert output.read_bytes() == bundled.read_bytes()
    manifest, _ = check_onnx_file(output)  # the copy matches its manifest's sha256
    original = json.loads(before)
    assert manifest["ood"]["data"]["root"] == str(data_root)
    assert manifest["ood"]["target_false_alarm_rate"] == 0.5
    assert manifest["ood"] != original["ood"]
    # everything but the calibration is the bundled model's
    assert {k: v for k, v in manifest.items() if k != "ood"} == {
        k: v for k, v in original.items() if k != "ood"}
    # a second run to the same path is refused before any work
    assert cli.main([*CALIBRATE, "--data", str(data_root), "--output", str(output)]) == 2
    assert "exists already; choose a new path" in capsys.readouterr().err


def test_output_must_be_an_onnx_path(data_root, tmp_path, capsys):
    assert cli.main([*CALIBRATE, "--data", str(data_root), "--output",
                     str(tmp_path / "x.json")]) == 2
    assert "expected a path ending in .onnx" in capsys.readouterr().err
