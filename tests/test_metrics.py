"""Streaming metrics: exact values on constructed inputs, cross-checks against references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dudes_ros import labels
from dudes_ros.evaluate import metrics as m


def test_confusion_exact_values() -> None:
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 255]], dtype=np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 0, 0, 2]], dtype=np.uint8)
    cm = m.ConfusionMatrix(num_classes=3)
    cm.update(pred, gt)
    np.testing.assert_array_equal(cm.matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    # IoU: class0 1/(2+1)=1/3 ; class1 2/(2+1)=2/3 ; class2 1/(2+0)=1/2
    np.testing.assert_allclose(cm.iou(), [1 / 3, 2 / 3, 1 / 2])
    assert cm.miou() == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3, abs=1e-12)
    assert cm.pixel_accuracy() == pytest.approx(4 / 6)


def test_confusion_absent_class_is_nan_and_bad_ids_refused() -> None:
    cm = m.ConfusionMatrix(num_classes=3)
    cm.update(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8))
    assert cm.iou()[0] == 1.0 and np.isnan(cm.iou()[1:]).all() and cm.miou() == 1.0
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
    cm = m.ConfusionMatrix()
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
    assert cm.miou() == pytest.approx(result["averageScoreClasses"], abs=1e-6)
    for name, iou in zip(labels.CLASS_NAMES, cm.iou(), strict=True):
        ref = result["classScores"][name]
        assert (math.isnan(ref) and math.isnan(iou)) or iou == pytest.approx(ref, abs=1e-6)


def test_ece_hand_computed_and_torchmetrics() -> None:
    ece = m.CalibrationError(bins=15)
    # two bins: conf 0.95 (all correct: gap 0.05) and conf 0.55 (half correct: gap 0.05),
    # one sample at exactly 1.0 and wrong (gap 1.0): ECE = (4*.05 + 4*.05 + 1*1) / 9
    ece.update(np.array([0.95] * 4 + [0.55] * 4 + [1.0]),
               np.array([1, 1, 1, 1, 1, 0, 1, 0, 0], bool))
    assert ece.ece() == pytest.approx((0.2 + 0.2 + 1.0) / 9, abs=1e-12)
    rel = ece.reliability()
    assert rel["count"][14] == 5 and rel["count"][8] == 4 and sum(rel["count"]) == 9

    tm = pytest.importorskip("torchmetrics.functional.classification")
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.full(5, 0.3), size=20_000)
    target = np.array([rng.choice(5, p=p) if rng.random() < 0.7 else rng.integers(5)
                       for p in probs])
    ref = tm.multiclass_calibration_error(torch.from_numpy(probs), torch.from_numpy(target),
                                          num_classes=5, n_bins=15, norm="l1")
    ece = m.CalibrationError(bins=15)
    half = 10_000  # streamed in two parts
    for sl in (slice(0, half), slice(half, None)):
        ece.update(probs[sl].max(1), probs[sl].argmax(1) == target[sl])
    assert ece.ece() == pytest.approx(float(ref), abs=1e-6)


def test_histogram_ranking_metrics_exact_values() -> None:
    h = m.BinaryHistogram(bins=10)
    # scores at bin centres of the sqrt grid: 0.05**2 ... ; positives high, one tie bin
    s = (np.array([0.05, 0.15, 0.55, 0.55, 0.95, 0.95]) ** 2)
    y = np.array([0, 0, 0, 1, 1, 1], bool)
    h.update(s, y)
    # pairs: 3 pos x 3 neg = 9; pos@0.95 beat all 3 neg (6), pos@0.55 beats 2, ties 1 (2.5)
    assert h.auroc() == pytest.approx(8.5 / 9)
    assert h.auroc_bin_error() == pytest.approx(0.5 * 1 / 9)
    # AP: thresholds 0.95 -> P=1, R=2/3; 0.55 -> P=3/4, R=1 => 2/3 + 1/3 * 3/4
    assert h.average_precision() == pytest.approx(2 / 3 + 0.25)
    assert h.fpr_at_tpr(0.95) == pytest.approx(1 / 3)


@pytest.mark.parametrize("seed", [0, 1])
def test_histogram_matches_sklearn(seed: int) -> None:
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    n = 50_000
    y = rng.random(n) < 0.2
    s = np.clip(rng.beta(2, 5, n) + 0.25 * y * rng.random(n), 0, 1)
    h = m.BinaryHistogram()
    for part in np.array_split(np.arange(n), 3):
        h.update(s[part], y[part])
    # exact on the quantised scores (the bin index is a monotone quantisation)
    q = m.score_bins(s, m.SCORE_BINS)
    assert h.auroc() == pytest.approx(skm.roc_auc_score(y, q), abs=1e-9)
    assert h.average_precision() == pytest.approx(skm.average_precision_score(y, q), abs=1e-9)
    fpr, tpr, _ = skm.roc_curve(y, q, drop_intermediate=False)
    assert h.fpr_at_tpr(0.95) == pytest.approx(fpr[np.argmax(tpr >= 0.95)], abs=1e-12)
    # against the raw scores: within the stated bin error
    bound = h.auroc_bin_error()
    assert 0 <= bound < 1e-3
    assert abs(h.auroc() - skm.roc_auc_score(y, s)) <= bound + 1e-12
    assert h.average_precision() == pytest.approx(skm.average_precision_score(y, s), abs=1e-3)
    fpr, tpr, _ = skm.roc_curve(y, s)
    assert h.fpr_at_tpr(0.95) == pytest.approx(fpr[np.argmax(tpr >= 0.95)], abs=1e-3)


def test_exact_auroc_matches_sklearn() -> None:
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    s = rng.integers(0, 20, 300) / 20.0  # many ties
    y = rng.random(300) < 0.3
    assert m.exact_auroc(s, y) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert math.isnan(m.exact_auroc(s, np.zeros(300, bool)))


def test_uncertainty_error_metrics_exact() -> None:
    gt = np.array([[0, 0, 1, 1, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 0, 0]], np.uint8)
    u = np.array([[0.1, 0.9, 0.2, 0.3, 1.0]], np.float32)
    um = m.UncertaintyErrorMetrics(threshold=0.25, num_classes=2)
    um.update(pred, gt, u)
    at = um.at_threshold()
    # accurate: u=.1 (certain), .2 (certain); inaccurate: .9 (uncertain), .3 (uncertain)
    assert at["p_accurate_given_certain"] == 1.0
    assert at["p_uncertain_given_inaccurate"] == 1.0
    assert at["pavpu"] == 1.0 and at["uncertain_share"] == 0.5
    assert um.errors.auroc() == 1.0
    sweep = {round(r["threshold"], 4): r for r in um.sweep((0.0, 0.25, 1.0))}
    assert sweep[0.0]["pavpu"] == 0.5 and sweep[1.0]["pavpu"] == 0.5
    assert sweep[0.25]["pavpu"] == 1.0
    curve = {r["removed"]: r["miou"] for r in um.removal_curve((0.0, 0.5))}
    # all 4 valid pixels: class0 IoU 1/3, class1 IoU 1/3 ; after removing the 2 most
    # uncertain (both errors) everything left is right
    assert curve[0.0] == pytest.approx(1 / 3)
    assert curve[0.5] == pytest.approx(1.0)


def test_removal_curve_monotone_for_informative_uncertainty() -> None:
    rng = np.random.default_rng(5)
    gt = rng.integers(0, 4, (64, 64)).astype(np.uint8)
    wrong = rng.random((64, 64)) < 0.3
    pred = np.where(wrong, (gt + 1) % 4, gt).astype(np.uint8)
    u = np.clip(0.5 * wrong + 0.3 * rng.random((64, 64)), 0, 1)
    um = m.UncertaintyErrorMetrics(threshold=0.4, num_classes=4)
    um.update(pred, gt, u)
    mious = [r["miou"] for r in um.removal_curve()]
    assert mious[0] == pytest.approx(m.mean_iou(np.bincount(
        gt.ravel().astype(int) * 4 + pred.ravel(), minlength=16).reshape(4, 4)), abs=1e-9)
    assert all(b >= a - 1e-9 for a, b in zip(mious, mious[1:], strict=False))
    assert mious[-1] == pytest.approx(1.0)  # 90 % removed leaves only the certain-right pixels


def test_running_correlation_matches_numpy() -> None:
    rng = np.random.default_rng(7)
    x = rng.random(30_000) * 0.5 + 1e3  # large offset: the naive sum formula loses digits
    y = 0.8 * x + 0.1 * rng.random(30_000)
    rc = m.RunningCorrelation()
    for part in np.array_split(np.arange(x.size), 7):
        rc.update(x[part], y[part])
    assert rc.pearson() == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-9)
    assert rc.rmse() == pytest.approx(np.sqrt(np.mean((x - y) ** 2)), abs=1e-9)


def test_student_teacher_agreement_per_class() -> None:
    gt = np.array([[0, 0, 1, 255]], np.uint8)
    us = np.array([[0.1, 0.3, 0.5, 0.9]])
    ut = np.array([[0.1, 0.1, 0.4, 0.5]])
    ag = m.StudentTeacherAgreement(num_classes=2)
    ag.update(us, ut, gt)
    s = ag.summary(("a", "b"))
    assert s["per_class"]["a"]["gap"] == pytest.approx(0.1)
    assert s["per_class"]["b"]["gap"] == pytest.approx(0.1)
    assert s["per_class"]["void"]["student"] == pytest.approx(0.9)
    assert s["mean_abs_class_gap"] == pytest.approx(0.1)
    assert s["rmse"] == pytest.approx(np.sqrt(np.mean((us - ut) ** 2)))


def test_ood_metrics_pixel_and_frame() -> None:
    ood = m.OodMetrics(pixel_threshold=0.5, frame_threshold=0.1)
    gt = np.zeros((4, 4), np.uint8)
    gt[0, 0] = 255  # void in-domain pixel: left out of the pixel metrics
    clean_u = np.full((4, 4), 0.2)
    clean_u[0, 0] = 0.99
    ood.update(clean_u, gt, np.zeros((4, 4), bool))
    anomaly = np.zeros((4, 4), bool)
    anomaly[2:, 2:] = True
    u = np.where(anomaly, 0.8, 0.2)
    ood.update(u, gt, anomaly)
    s = ood.summary()
    assert s["pixel"]["auroc"] == 1.0 and s["pixel"]["fpr_at_95_tpr"] == 0.0
    # the void pixel is left out in both frames
    assert s["pixel"]["positives"] == 4 and s["pixel"]["negatives"] == 15 + 11
    assert s["frame"]["auroc"] == 1.0
    assert s["frame"]["false_alarm_rate"] == 0.0 and s["frame"]["detection_rate"] == 1.0
    scores, used = ood.frame_scores()
    np.testing.assert_allclose(scores, [1 / 16, 4 / 16])
    # from the per-frame histograms at another threshold (0.81 = 0.9**2 is a grid edge)
    scores, used = ood.frame_scores(0.81)
    assert used == pytest.approx(0.81) and scores.tolist() == [1 / 16, 0.0]


def test_choose_pixel_threshold_pavpu_optimum_and_fallback() -> None:
    h = m.BinaryHistogram()
    # right pixels at u=0.04, wrong pixels at u=0.64: any edge in between separates them
    h.update(np.array([0.04] * 90 + [0.64] * 10), np.array([False] * 90 + [True] * 10))
    t = m.choose_pixel_threshold(h)
    assert 0.04 < t <= 0.64
    rare = m.BinaryHistogram()  # never more often wrong than right: quantile fallback
    u = np.linspace(0, 1, 1001)
    rare.update(np.concatenate([u, u, u]), np.repeat([False, False, True], u.size))
    assert m.choose_pixel_threshold(rare, fallback_quantile=0.99) == pytest.approx(0.99, abs=2e-3)


def test_quantile_threshold_leaves_the_stated_share_above() -> None:
    h = m.BinaryHistogram()
    u = np.linspace(0, 1, 100_001)
    h.update(u, u > 0.5)  # positives and negatives alike count
    t = m.quantile_threshold(h, 0.999)
    assert t == pytest.approx(0.999, abs=2e-3) and np.mean(u > t) <= 0.001
    assert m.quantile_threshold(m.BinaryHistogram(), 0.999) == 1.0
    with pytest.raises(ValueError, match=r"quantile must lie in \(0, 1\), got 1.0"):
        m.quantile_threshold(h, 1.0)


def test_training_accumulators_report_what_the_evaluation_reports():
    """Counting on a torch device (training, for DDP) gives the numbers counting on the host
    gives, with the same argument order; train.metrics' Pearson sums give evaluate's r."""
    import torch

    from dudes_ros.train.metrics import PearsonAccumulator

    rng = np.random.default_rng(11)
    gt = rng.integers(0, 4, (2, 6, 7))
    gt[0, 0] = 255
    pred = rng.integers(0, 4, (2, 6, 7))
    device = m.ConfusionMatrix(num_classes=4, device=torch.device("cpu"))
    host = m.ConfusionMatrix(num_classes=4)
    device.update(torch.from_numpy(pred), torch.from_numpy(gt))
    for p, g in zip(pred, gt, strict=True):
        host.update(p, g)
    assert isinstance(device.counts, torch.Tensor) and device.counts.shape == (16,)
    np.testing.assert_array_equal(device.matrix, host.matrix)
    assert device.miou() == pytest.approx(host.miou())
    np.testing.assert_allclose(device.iou(), host.iou())
    x, y = rng.random((2, 50)), rng.random((2, 50))
    acc, run = PearsonAccumulator(torch.device("cpu")), m.RunningCorrelation()
    for a, b in zip(x, y, strict=True):
        acc.update(torch.from_numpy(a), torch.from_numpy(b))
        run.update(a, b)
    assert acc.value() == pytest.approx(run.pearson(), abs=1e-12)
    assert acc.value() == pytest.approx(np.corrcoef(x.ravel(), y.ravel())[0, 1], abs=1e-12)
