"""What a model was trained on: the manifest's ``trained_on``, written by export, read back
(with a fallback for manifests written before it existed), and shipped with the bundled model."""

from __future__ import annotations

import json

import pytest

from dudes_ros.export.onnx_export import build_manifest
from dudes_ros.resources import bundled_model
from dudes_ros.runtime.manifest import (
    ManifestError,
    describe_training_data,
    load_manifest,
    manifest_path,
    trained_on,
)
from tests.helpers.export_models import tiny_student

SYNTHETIC_META = {"recipe": "synthetic",
                  "data": {"source": "synthetic", "train_split": "train", "train_images": 300,
                           "synthetic": {"size": [128, 256]}}}
CITYSCAPES_META = {"recipe": "cityscapes",
                   "data": {"source": "cityscapes", "train_split": "train",
                            "train_images": 2975}}


def test_synthetic_training_data_is_not_real_images():
    described = describe_training_data(SYNTHETIC_META)
    assert described["dataset"] == "synthetic"
    assert described["real_images"] is False
    assert "300 training images at 128x256" in described["description"]


def test_cityscapes_training_data_is_real_images():
    described = describe_training_data(CITYSCAPES_META)
    assert described["dataset"] == "cityscapes"
    assert described["real_images"] is True
    assert "2975 training images" in described["description"]


def test_recipe_name_alone_and_missing_metadata():
    assert describe_training_data({"recipe": "cityscapes"})["real_images"] is True
    assert describe_training_data({"data": "synthetic"})["dataset"] == "synthetic"
    unknown = describe_training_data(None)
    assert (unknown["dataset"], unknown["real_images"]) == ("unknown", None)


def test_export_writes_trained_on_from_the_checkpoint_metadata():
    manifest = build_manifest(tiny_student(), model_name="t", onnx_sha256="0" * 64, opset=17,
                              metadata=CITYSCAPES_META, source=None, parity=[])
    assert manifest["trained_on"] == describe_training_data(CITYSCAPES_META)
    assert manifest["trained_on"]["real_images"] is True


def test_older_manifest_falls_back_to_its_training_section():
    old = {"training": SYNTHETIC_META}
    assert trained_on(old) == describe_training_data(SYNTHETIC_META)
    given = {"trained_on": {"dataset": "x", "description": "y", "real_images": True},
             "training": SYNTHETIC_META}
    assert trained_on(given)["dataset"] == "x"


def test_bundled_manifest_says_synthetic_only():
    said = trained_on(load_manifest(bundled_model()))
    assert said["dataset"] == "synthetic"
    assert said["real_images"] is False
    # written into the file itself, not derived
    assert "trained_on" in json.loads(manifest_path(bundled_model()).read_text())


@pytest.mark.parametrize("value, key", [
    ("synthetic", "object"),
    ({"dataset": "synthetic", "description": "d"}, "real_images"),
    ({"dataset": 3, "description": "d", "real_images": False}, "dataset"),
    ({"dataset": "synthetic", "description": "d", "real_images": "no"}, "real_images"),
])
def test_bad_trained_on_is_refused_naming_the_key(tmp_path, value, key):
    manifest = json.loads(manifest_path(bundled_model()).read_text())
    manifest["trained_on"] = value
    onnx = tmp_path / "m.onnx"
    manifest_path(onnx).write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match=key):
        load_manifest(onnx)
