"""End to end: `dudes evaluate` and `dudes calibrate` on a Cityscapes-layout folder.

Runs on a generated fixture (synthetic street scenes written with real Cityscapes file names
and labelIds, half of them with an anomaly and its mask) or, when CITYSCAPES_DATASET is set,
on the first frames of the real val split.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias

from dudes_ros import cli
from dudes_ros.data.cityscapes import CityscapesDataset
from dudes_ros.data.synthetic import write_cityscapes_layout
from dudes_ros.evaluate import metrics as mt
from dudes_ros.evaluate.calibrate import choose_frame_threshold
from dudes_ros.model.checkpoint import save_checkpoint
from dudes_ros.model.config import ModelConfig
from dudes_ros.model.student import SegmentationNet, normalize
from dudes_ros.ood import uncertain_fraction

pytestmark = pytest.mark.cityscapes
SIZE = (64, 128)
LIMIT = 4


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    real = os.environ.get("CITYSCAPES_DATASET")
    if real:
        return Path(real)
    root = tmp_path_factory.mktemp("cityscapes")
    write_cityscapes_layout(root, "val", LIMIT, seed=3, size=SIZE, anomaly_fraction=0.5)
    return root


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("ckpt")
    tiny = {"decoder_channels": 16, "input_size": SIZE}
    paths = {"student": save_checkpoint(
        out / "student.pt", SegmentationNet(ModelConfig(**tiny)), role="student", metadata={})}
    for i in range(2):
        net = SegmentationNet(ModelConfig(uncertainty_head=False, **tiny))
        paths[f"member{i}"] = save_checkpoint(out / f"member{i}.pt", net, role="member",
                                              metadata={"seed": i})
    return paths


def _student_confusion(ckpt: Path, dataset: CityscapesDataset) -> np.ndarray:
    """Independent reference: the student's confusion matrix computed frame by frame here."""
    from dudes_ros.model.checkpoint import load_model

    net, _ = load_model(ckpt)
    conf = np.zeros((19, 19), np.int64)
    with torch.no_grad():
        for i in range(min(LIMIT, len(dataset))):
            item = dataset[i]
            x = normalize(torch.from_numpy(item["image"])[None], net.config)
            x = F.interpolate(x, size=SIZE, mode="bilinear", align_corners=False)
            probs = net(x)[0].softmax(1)
            probs = F.interpolate(probs, size=item["labels"].shape, mode="bilinear",
                                  align_corners=False)
            pred = probs.argmax(1)[0].numpy()
            gt = item["labels"]
            v = gt != 255
            conf += np.bincount(gt[v].astype(int) * 19 + pred[v], minlength=361).reshape(19, 19)
    return conf


def test_evaluate_report_end_to_end(data_root, checkpoints, tmp_path) -> None:
    report = tmp_path / "report"
    rc = cli.main(["evaluate", "--data", str(data_root), "--split", "val",
                   "--student", str(checkpoints["student"]),
                   "--teacher", str(checkpoints["member0"]), str(checkpoints["member1"]),
                   "--input-size", "x".join(map(str, SIZE)), "--device", "cpu",
                   "--limit", str(LIMIT), "--examples", "2", "--report", str(report)])
    assert rc == 0
    for name in ("report.md", "metrics.json", "reliability.png", "removal_curve.png",
                 "errors_roc_pr.png", "examples.png"):
        assert (report / name).stat().st_size > 500, name
    assert not list(report.glob(".*.tmp"))
    results = json.loads((report / "metrics.json").read_text())
    dataset = CityscapesDataset(data_root, "val")
    frames = min(LIMIT, len(dataset))
    assert results["frames"] == frames

    # the streamed confusion equals one computed independently, pixel for pixel
    ref = _student_confusion(checkpoints["student"], dataset)
    seg = results["models"]["student"]["segmentation"]
    assert seg["pixels"] == int(ref.sum())
    assert seg["miou"] == pytest.approx(mt.mean_iou(ref), abs=1e-12)
    assert seg["pixel_accuracy"] == pytest.approx(np.trace(ref) / ref.sum(), abs=1e-12)

    rows = {r["method"]: r for r in results["comparison"]}
    assert set(rows) == {"student_u", "teacher_std", "teacher_entropy", "teacher_mi",
                         "member_max_softmax", "member_entropy"}
    assert [rows[m]["forward_passes"] for m in ("student_u", "teacher_std", "member_entropy")] \
        == [1, 2, 1]
    for row in rows.values():
        assert row["latency_ms"] > 0 and 0.0 <= row["ece"] <= 1.0
        accuracy = results["models"][row["model"]]["segmentation"]["pixel_accuracy"]
        if 0.0 < accuracy < 1.0:
            assert 0.0 <= row["error_auroc"] <= 1.0
        else:  # an untrained net may be right (or wrong) everywhere: AUROC is undefined
            assert row["error_auroc"] is None
    # the member baseline is teacher member 0: same predictions as a one-member model
    assert results["models"]["member"]["segmentation"]["pixels"] == seg["pixels"]

    agreement = results["student_vs_teacher"]
    total_pixels = sum(dataset[i]["labels"].size for i in range(frames))
    assert agreement["pixels"] == total_pixels
    assert -1.0 <= agreement["pearson_r"] <= 1.0 and agreement["rmse"] >= 0.0

    # anomaly pixels in the fixture: every mask pixel of the evaluated frames is a positive
    positives = sum(int(dataset[i]["anomaly"].sum()) for i in range(frames)
                    if dataset[i]["anomaly"] is not None)
    ood = results["methods"]["student_u"]["ood"]
    assert ood["pixel"]["positives"] == positives
    if positives:
        assert (report / "anomaly_roc_pr.png").is_file()
    text = (report / "report.md").read_text()
    assert "| student_u | 1 |" in text and "![reliability diagram](reliability.png)" in text
    # no operating point was given: the report must not claim one
    assert results["operating_point"]["pixel"] is None
    assert "operating threshold" not in text.replace("has no operating threshold", "")
    assert "The student has no operating threshold here" in text
    assert f"Student: checkpoint {checkpoints['student']}." in text
    curve = results["methods"]["student_u"]["errors"]["removal_curve"]
    assert [p["removed"] for p in curve] == [round(0.1 * i, 1) for i in range(10)]
    assert curve[0]["miou"] == pytest.approx(seg["miou"], abs=1e-9)


def test_choose_frame_threshold_exact() -> None:
    scores = np.arange(200) / 200.0  # 0 .. 0.995
    t, rate = choose_frame_threshold(scores, 0.01)  # 2 of 200 may exceed
    assert t == pytest.approx(0.985) and rate == pytest.approx(0.01)
    t, rate = choose_frame_threshold(np.array([0.1, 0.2, 0.3]), 0.01)  # too few frames
    assert t == 0.3 and rate == 0.0
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        choose_frame_threshold(scores, 1.5)


def test_calibrate_writes_manifest(data_root, checkpoints, tmp_path) -> None:
    from dudes_ros.export.onnx_export import export_onnx
    from dudes_ros.inference.factory import create_predictor
    from dudes_ros.model.checkpoint import load_model
    from dudes_ros.runtime.manifest import load_manifest

    net, _ = load_model(checkpoints["student"])
    onnx = tmp_path / "student.onnx"
    export_onnx(net, onnx, parity_shapes=[(1, *SIZE)])
    rc = cli.main(["calibrate", "--model", str(onnx), "--data", str(data_root), "--split", "val",
                   "--false-alarm-rate", "0.5", "--limit", str(LIMIT), "--backend",
                   "onnxruntime", "--device", "cpu"])
    assert rc == 0
    ood = load_manifest(onnx)["ood"]
    dataset = CityscapesDataset(data_root, "val")
    in_domain = [i for i in range(min(LIMIT, len(dataset)))
                 if dataset[i]["anomaly"] is None or not dataset[i]["anomaly"].any()]
    assert ood["data"]["frames"] == len(in_domain)
    assert ood["target_false_alarm_rate"] == 0.5 and ood["false_alarm_rate"] <= 0.5
    assert 0.0 <= ood["pixel_threshold"] <= 1.0
    assert ood["data"]["pixel_threshold_rule"] == "0.9999 quantile of in-domain pixel uncertainty"
    # the node's own frame score at the written thresholds reproduces the stated rate
    with create_predictor(onnx, backend="onnxruntime", device="cpu") as predictor:
        scores = [uncertain_fraction(predictor.predict(dataset[i]["image"][None])[1][0],
                                     ood["pixel_threshold"]) for i in in_domain]
    assert np.mean(np.array(scores) > ood["frame_threshold"]) == pytest.approx(
        ood["false_alarm_rate"], abs=1e-12)


def test_evaluate_scores_the_deployed_model_at_its_operating_point(data_root, checkpoints,
                                                                    tmp_path) -> None:
    """Without --student, the exported ONNX itself runs (ONNX Runtime), with the thresholds of
    its manifest; its numbers equal the predictor's own outputs on the same frames."""
    from dudes_ros.export.onnx_export import export_onnx
    from dudes_ros.inference.factory import create_predictor
    from dudes_ros.model.checkpoint import load_model
    from dudes_ros.runtime.manifest import update_ood_calibration

    net, _ = load_model(checkpoints["student"])
    onnx = tmp_path / "student.onnx"
    export_onnx(net, onnx, parity_shapes=[(1, *SIZE)])
    update_ood_calibration(onnx, {"pixel_threshold": 0.5, "frame_threshold": 0.25,
                                  "false_alarm_rate": 0.0})
    report = tmp_path / "report"
    assert cli.main(["evaluate", "--data", str(data_root), "--model", str(onnx),
                     "--backend", "onnxruntime", "--teacher", str(checkpoints["member0"]),
                     str(checkpoints["member1"]), "--device", "cpu", "--limit", str(LIMIT),
                     "--examples", "1", "--report", str(report)]) == 0
    results = json.loads((report / "metrics.json").read_text())
    student = results["models"]["student"]
    assert student["ece"] is None and student["reliability"] is None  # no probabilities
    assert results["models"]["teacher"]["ece"] is not None
    assert results["input_size"] == list(SIZE)  # the manifest's network input size
    assert results["operating_point"] == {
        "pixel": 0.5, "pixel_source": f"from the manifest of {onnx}",
        "frame": 0.25, "frame_source": f"from the manifest of {onnx}"}
    dataset = CityscapesDataset(data_root, "val")
    frames = min(LIMIT, len(dataset))
    conf = np.zeros((19, 19), np.int64)
    right_or_uncertain_wrong = 0  # PAvPU's numerator: accurate-certain + inaccurate-uncertain
    with create_predictor(onnx, backend="onnxruntime", device="cpu") as predictor:
        for i in range(frames):
            item = dataset[i]
            labels, u = predictor.predict(item["image"][None])
            gt, pred = item["labels"], labels[0].astype(np.int64)
            v = gt != 255
            conf += np.bincount(gt[v].astype(int) * 19 + pred[v],
                                minlength=361).reshape(19, 19)
            right, uncertain = pred == gt, u[0] > 0.5
            right_or_uncertain_wrong += int((v & (right != uncertain)).sum())
    assert student["segmentation"]["pixels"] == int(conf.sum())
    assert student["segmentation"]["miou"] == pytest.approx(mt.mean_iou(conf), abs=1e-12)
    pavpu = results["methods"]["student_u"]["errors"]["at_threshold"]
    assert pavpu["threshold"] == 0.5 and not pavpu["chosen"]
    assert pavpu["pavpu"] == pytest.approx(right_or_uncertain_wrong / conf.sum(), abs=1e-12)
    text = (report / "report.md").read_text()
    assert (f"The student's PAvPU is at its operating pixel threshold 0.5 (from the manifest "
            f"of {onnx})") in text
    assert f"Student: deployed model {onnx} (onnxruntime backend)." in text
    assert "reliability.png" in text  # the teacher's and member's diagrams remain
    assert results["student_vs_teacher"]["pixels"] == sum(
        dataset[i]["labels"].size for i in range(frames))


def test_examples_plot_shares_the_uncertainty_scale(monkeypatch, tmp_path) -> None:
    from dudes_ros.evaluate import report_plots

    figures = []
    monkeypatch.setattr(report_plots, "_save",
                        lambda fig, path: figures.append(fig) or path.name)
    gt = np.zeros((8, 16), np.uint8)
    example = {"image": np.zeros((8, 16, 3), np.uint8), "gt": gt, "pred": gt,
               "u_s": np.full((8, 16), 0.1, np.float32), "u_t": np.full((8, 16), 0.4, np.float32),
               "anomaly": None}
    report_plots.plot_examples([example, {**example, "u_t": None}],
                               tmp_path / "examples.png")
    fig = figures[0]
    rows = np.array(fig.axes[:12]).reshape(2, 6)
    # row 1: u_S (max 0.1) is drawn on u_T's scale (max 0.4), so it looks 4x fainter
    for ax in rows[0, 4:]:
        assert ax.images[0].get_clim() == (0, pytest.approx(0.4))
        assert ax.get_title().endswith("(0-0.40)")
    # row 2 has no teacher map: u_S alone sets the scale, the u_T panel stays empty
    assert rows[1, 4].images[0].get_clim() == (0, pytest.approx(0.1))
    assert not rows[1, 5].images
    assert rows[0, 3].images[0].get_clim() == (0, 1)  # the error map keeps its 0-1 scale
    # one colour bar per row, on that row's u scale, and a legend for the error panel's greys
    bars = fig.axes[12:]
    assert len(bars) == 2 and [b.get_ylabel() for b in bars] == ["uncertainty"] * 2
    assert bars[0].get_ylim() == pytest.approx((0, 0.4)) and bars[1].get_ylim() == pytest.approx(
        (0, 0.1))
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "error: wrong", "error: right", "error: void, not scored"]
    assert [tuple(p.get_facecolor()[:3]) for p in legend.get_patches()] == [
        (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (0.5, 0.5, 0.5)]


def test_evaluate_and_calibrate_default_to_the_bundled_model(data_root, tmp_path,
                                                             capsys) -> None:
    from dudes_ros.resources import bundled_model
    from dudes_ros.runtime.manifest import load_manifest, manifest_path

    bundled = bundled_model()
    before = manifest_path(bundled).read_bytes()
    report = tmp_path / "report"
    assert cli.main(["evaluate", "--data", str(data_root), "--limit", "2", "--device", "cpu",
                     "--backend", "onnxruntime", "--examples", "0",
                     "--report", str(report)]) == 0
    results = json.loads((report / "metrics.json").read_text())
    ood = load_manifest(bundled)["ood"]
    assert results["data"]["student"] == f"deployed model {bundled} (onnxruntime backend)"
    assert results["operating_point"]["pixel"] == ood["pixel_threshold"]
    assert set(results["models"]) == {"student"}  # no teacher or member checkpoints given
    capsys.readouterr()
    assert cli.main(["calibrate", "--data", str(data_root), "--limit", str(LIMIT),
                     "--false-alarm-rate", "0.5", "--backend", "onnxruntime", "--device",
                     "cpu", "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("pixel threshold ")
    assert manifest_path(bundled).read_bytes() == before  # --dry-run wrote nothing
