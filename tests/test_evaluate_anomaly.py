"""`dudes evaluate` on anomaly data: why the anomaly columns are n/a without it, and a public
anomaly-benchmark layout (images + per-image OOD masks, 1 = anomaly, 0 = in-distribution,
255 = void) scored against the deployed model's own uncertainty."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dudes_ros import cli
from dudes_ros.data.anomaly_benchmark import AnomalyBenchmark
from dudes_ros.data.cityscapes import DatasetLayoutError
from dudes_ros.data.synthetic import write_cityscapes_layout
from dudes_ros.evaluate import metrics as mt
from dudes_ros.model.config import ModelConfig
from dudes_ros.model.student import SegmentationNet

SIZE = (64, 128)


@pytest.fixture(scope="module")
def student_onnx(tmp_path_factory) -> Path:
    from dudes_ros.export.onnx_export import export_onnx

    torch.manual_seed(0)
    net = SegmentationNet(ModelConfig(decoder_channels=16, input_size=SIZE)).eval()
    return export_onnx(net, tmp_path_factory.mktemp("model") / "student.onnx",
                       parity_shapes=[(1, *SIZE)]).onnx_path


@pytest.fixture(scope="module")
def in_domain(tmp_path_factory) -> Path:
    """Two Cityscapes-layout frames without any anomaly mask (as the real Cityscapes)."""
    root = tmp_path_factory.mktemp("cityscapes")
    write_cityscapes_layout(root, "val", 2, seed=5, size=SIZE, anomaly_fraction=0.0)
    for mask in root.rglob("*_gtFine_anomalyMask.png"):
        mask.unlink()
    return root


def write_benchmark(root: Path) -> list[np.ndarray]:
    """Three images (one .jpg) with masks: an anomaly square and a void border; one frame
    without anomaly; one mask named as SegmentMeIfYouCan names them. Returns the masks."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    masks = []
    for i, (name, mask_name, ext) in enumerate([("lf_000", "lf_000.png", ".png"),
                                                ("lf_001", "lf_001.png", ".jpg"),
                                                ("ra_002", "ra_002_labels_semantic.png",
                                                 ".png")]):
        image = rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)
        mask = np.zeros(SIZE, np.uint8)
        mask[:4] = 255  # void: the ego vehicle, say
        if i != 1:
            mask[20 + 5 * i:40 + 5 * i, 30:60] = 1
        cv2.imwrite(str(root / "images" / f"{name}{ext}"), image[..., ::-1])
        cv2.imwrite(str(root / "labels" / mask_name), mask)
        masks.append(mask)
    return masks


def test_benchmark_reader_pairs_masks_and_keeps_void(tmp_path):
    masks = write_benchmark(tmp_path / "fs")
    data = AnomalyBenchmark(tmp_path / "fs")
    assert [image.name for image, _ in data.samples] == [
        "lf_000.png", "lf_001.jpg", "ra_002.png"]
    item = data[2]
    np.testing.assert_array_equal(item["anomaly"], masks[2] == 1)
    np.testing.assert_array_equal(item["labels"] == 255, masks[2] == 255)
    assert not data[1]["anomaly"].any()


def test_benchmark_reader_refuses_what_it_cannot_score(tmp_path):
    with pytest.raises(DatasetLayoutError, match="no image folder.*images or original"):
        AnomalyBenchmark(tmp_path)
    write_benchmark(tmp_path / "fs")
    bad = np.zeros(SIZE, np.uint8)
    bad[5, 5] = 2  # Road Anomaly's raw coding
    cv2.imwrite(str(tmp_path / "fs" / "labels" / "lf_000.png"), bad)
    with pytest.raises(DatasetLayoutError, match=r"holds value\(s\) \[2\]; expected 1 = anomaly"):
        AnomalyBenchmark(tmp_path / "fs")[0]
    (tmp_path / "fs" / "labels" / "lf_001.png").unlink()
    with pytest.raises(DatasetLayoutError, match="no mask for image .*lf_001.jpg"):
        AnomalyBenchmark(tmp_path / "fs")


def evaluate(args: list[str]) -> int:
    return cli.main(["evaluate", "--backend", "onnxruntime", "--device", "cpu",
                     "--examples", "0", *args])


def test_without_anomaly_masks_the_report_says_why_anomaly_scores_are_na(
        in_domain, student_onnx, tmp_path, capsys):
    assert evaluate(["--data", str(in_domain), "--model", str(student_onnx),
                     "--pixel-threshold", "0.5", "--frame-threshold", "0.1",
                     "--report", str(tmp_path / "r")]) == 0
    printed = capsys.readouterr().out
    assert "| n/a | n/a | n/a | n/a |" in printed
    note = [line for line in printed.splitlines() if line.startswith("Anomaly AUROC")]
    assert note == [
        "Anomaly AUROC, AP, FPR@95 and frame AUROC are n/a: the data has no anomaly pixels "
        "(no *_gtFine_anomalyMask.png beside its labels; Cityscapes has none). To score "
        "anomalies, pass --anomaly-data DIR: a folder of images plus per-image OOD masks "
        "(DIR/images/<name>.png|.jpg, DIR/labels/<name>.png; 1 = anomaly, 0 = "
        "in-distribution, 255 = void), as Fishyscapes Lost & Found and Road Anomaly are "
        "distributed."]
    assert note[0] in (tmp_path / "r" / "report.md").read_text()


def test_anomaly_benchmark_fills_the_anomaly_columns(in_domain, student_onnx, tmp_path,
                                                     capsys):
    from dudes_ros.inference.factory import create_predictor

    masks = write_benchmark(tmp_path / "fs")
    report = tmp_path / "r"
    assert evaluate(["--data", str(in_domain), "--model", str(student_onnx),
                     "--pixel-threshold", "0.5", "--frame-threshold", "0.1",
                     "--anomaly-data", str(tmp_path / "fs"), "--report", str(report)]) == 0
    results = json.loads((report / "metrics.json").read_text())
    bench = results["anomaly_benchmark"]
    assert bench["frames"] == 3
    pixel = bench["methods"]["student_u"]["ood"]["pixel"]
    assert pixel["positives"] == sum(int((m == 1).sum()) for m in masks)
    assert pixel["negatives"] == sum(int((m == 0).sum()) for m in masks)  # void left out
    # independent reference: the exact AUROC of the predictor's u over the scored pixels
    data = AnomalyBenchmark(tmp_path / "fs")
    scores, positive = [], []
    with create_predictor(student_onnx, backend="onnxruntime", device="cpu") as predictor:
        for i in range(len(data)):
            u = np.clip(predictor.predict(data[i]["image"][None])[1][0], 0.0, 1.0)
            scored = masks[i] != 255
            scores.append(u[scored])
            positive.append(masks[i][scored] == 1)
    exact = mt.exact_auroc(np.concatenate(scores), np.concatenate(positive))
    assert pixel["auroc"] == pytest.approx(exact, abs=pixel["auroc_bin_error"] + 1e-9)
    (row,) = results["comparison"]
    assert row["anomaly_data"] == "benchmark" and row["anomaly_auroc"] == pixel["auroc"]
    frame = bench["methods"]["student_u"]["ood"]["frame"]
    assert (frame["frames"], frame["anomalous_frames"]) == (3, 2)
    printed = capsys.readouterr().out
    assert f"Anomaly columns: 3 frames of {tmp_path / 'fs'}" in printed
    assert (report / "anomaly_roc_pr.png").is_file()
    # the main data's numbers are untouched by the benchmark frames
    assert results["frames"] == 2
    assert results["models"]["student"]["segmentation"]["pixels"] <= 2 * SIZE[0] * SIZE[1]
