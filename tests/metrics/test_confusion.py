"""ConfusionMatrix: exact values, cityscapesscripts' mIoU, counting on a torch device."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dudes_ros import labels
from dudes_ros.evaluate.metrics import ConfusionMatrix
from tests.metrics.merging import check_merge


def test_confusion_exact_values() -> None:
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 255]], dtype=np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 0, 0, 2]], dtype=np.uint8)
    cm = ConfusionMatrix(num_classes=3)
    cm.update(pred, gt)
    np.testing.assert_array_equal(cm.matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    result = cm.compute()
    # IoU: class0 1/(2+1)=1/3 ; class1 2/(2+1)=2/3 ; class2 1/(2+0)=1/2
    np.testing.assert_allclose(result["iou"], [1 / 3, 2 / 3, 1 / 2])
    assert result["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3, abs=1e-12)
    assert result["pixel_accuracy"] == pytest.approx(4 / 6)
    assert result["pixels"] == 6


def test_confusion_absent_class_is_nan_and_bad_ids_refused() -> None:
    cm = ConfusionMatrix(num_classes=3)
    cm.update(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8))
    iou = cm.compute()["iou"]
    assert iou[0] == 1.0 and np.isnan(iou[1:]).all() and cm.compute()["miou"] == 1.0
    with pytest.raises(ValueError, match="pred holds class ids outside"):
        cm.update(np.full((2, 2), 7, np.uint8), np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros((3, 2), np.uint8), np.zeros((2, 2), np.uint8))


def test_miou_matches_cityscapesscripts(tmp_path, monkeypatch) -> None:
    cv2 = pytest.importorskip("cv2")
    ev = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
    rng = np.random.default_rng(0)
    valid_ids = np.array([lb.id for lb in labels.LABELS if lb.id >= 0], dtype=np.uint8)
    train_label_ids = labels.TRAIN_ID_TO_ID[: labels.NUM_CLASSES]
    cm = ConfusionMatrix()
    preds, gts = [], []
    for i in range(3):
        gt_ids = rng.choice(valid_ids, size=(24, 40)).astype(np.uint8)
        pred_train = rng.integers(0, labels.NUM_CLASSES, size=(24, 40), dtype=np.uint8)
        # make predictions correlated with truth so IoUs are not all tiny
        gt_train = labels.label_ids_to_train_ids(gt_ids)
        agree = (rng.random((24, 40)) < 0.6) & (gt_train != labels.IGNORE_INDEX)
        pred_train[agree] = gt_train[agree]
        cm.update(pred_train, gt_train)
        gp, pp = tmp_path / f"c_{i}_gtFine_labelIds.png", tmp_path / f"c_{i}_pred.png"
        cv2.imwrite(str(gp), gt_ids)
        cv2.imwrite(str(pp), train_label_ids[pred_train])
        gts.append(str(gp))
        preds.append(str(pp))
    monkeypatch.setattr(ev.args, "evalInstLevelScore", False)
    monkeypatch.setattr(ev.args, "JSONOutput", False)
    monkeypatch.setattr(ev.args, "quiet", True)
    result = ev.evaluateImgLists(preds, gts, ev.args)
    ours = cm.compute()
    assert ours["miou"] == pytest.approx(result["averageScoreClasses"], abs=1e-6)
    for name, iou in zip(labels.CLASS_NAMES, ours["iou"], strict=True):
        ref = result["classScores"][name]
        assert (math.isnan(ref) and math.isnan(iou)) or iou == pytest.approx(ref, abs=1e-6)


def test_counting_on_a_device_gives_the_host_numbers() -> None:
    """Counting on a torch device (training, for DDP) gives the numbers counting on the host
    gives, with the same argument order."""
    rng = np.random.default_rng(11)
    gt = rng.integers(0, 4, (2, 6, 7))
    gt[0, 0] = 255
    pred = rng.integers(0, 4, (2, 6, 7))
    device = ConfusionMatrix(num_classes=4, device=torch.device("cpu"))
    host = ConfusionMatrix(num_classes=4)
    device.update(torch.from_numpy(pred), torch.from_numpy(gt))
    for p, g in zip(pred, gt, strict=True):
        host.update(p, g)
    assert isinstance(device.state(), torch.Tensor) and device.state().shape == (16,)
    np.testing.assert_array_equal(device.matrix, host.matrix)
    assert device.compute()["miou"] == pytest.approx(host.compute()["miou"])
    np.testing.assert_allclose(device.compute()["iou"], host.compute()["iou"])


def test_merge_of_two_halves_equals_the_whole() -> None:
    rng = np.random.default_rng(2)
    updates = []
    for _ in range(4):
        gt = rng.integers(0, 5, (6, 9)).astype(np.uint8)
        gt[0] = 255
        updates.append((rng.integers(0, 5, (6, 9)).astype(np.uint8), gt))
    check_merge(lambda: ConfusionMatrix(num_classes=5), updates)
    device = [tuple(torch.from_numpy(a.astype(np.int64)) for a in args) for args in updates]
    check_merge(lambda: ConfusionMatrix(num_classes=5, device=torch.device("cpu")), device)
    with pytest.raises(ValueError, match=r"shapes \(16,\) and \(25,\)"):
        ConfusionMatrix(num_classes=5).merge(ConfusionMatrix(num_classes=4))
