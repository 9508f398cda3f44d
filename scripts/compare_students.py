"""Deployed students side by side on one evaluation set, with a paired bootstrap over its scenes.

    python scripts/compare_students.py --data runs/synth/evaluation --split val \
        previous=old/dudes_student.onnx new=engines/dudes_student.onnx [--resamples 2000]

Each ONNX runs through ONNX Runtime on every frame (as ``dudes evaluate --model`` scores it);
per frame and model it keeps the score histograms ``dudes evaluate`` uses (anomaly pixels
against the other labelled pixels; misclassified against correct pixels). Resampling the
scenes with replacement (the same resample for every model) and summing their histograms gives
each metric's spread over scene sets, and the 95 % interval of each model's difference from the
first one: the noise a model-card comparison on this set is judged against (engines/MODEL_CARD.md).
scipy's ``bootstrap`` would recompute every metric from 3 M pixels per resample; summing
per-scene histograms makes 2000 resamples take seconds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dudes_ros.data.cityscapes import CityscapesDataset  # noqa: E402
from dudes_ros.evaluate.metrics import SCORE_BINS, BinaryHistogram  # noqa: E402
from dudes_ros.inference.factory import create_predictor  # noqa: E402
from dudes_ros.labels import IGNORE_INDEX  # noqa: E402


def scene_histograms(model: Path, dataset: CityscapesDataset, label: str) -> np.ndarray:
    """float64 [scenes, 2 (anomaly, error), 2 (positive, negative), SCORE_BINS]."""
    predictor = create_predictor(model, backend="onnxruntime", device="cpu")
    out = np.zeros((len(dataset), 2, 2, SCORE_BINS))
    for i in tqdm(range(len(dataset)), desc=label, unit="frame"):
        item = dataset[i]
        gt, anomaly = item["labels"], item["anomaly"]
        labels, u = (a[0] for a in predictor.predict(item["image"][None]))
        valid = gt != IGNORE_INDEX
        hists = (BinaryHistogram(), BinaryHistogram())
        if anomaly is not None:
            keep = anomaly | valid
            hists[0].update(u[keep], anomaly[keep])
        hists[1].update(u[valid], labels[valid] != gt[valid])
        for k, h in enumerate(hists):
            out[i, k] = h.positive, h.negative
    predictor.close()
    return out


def metrics(hist: np.ndarray) -> dict[str, float]:
    """Ranking metrics of summed ``[2, 2, SCORE_BINS]`` histograms."""
    anomaly, error = BinaryHistogram(), BinaryHistogram()
    (anomaly.positive, anomaly.negative), (error.positive, error.negative) = hist
    rate = error.positive.sum() / (error.positive.sum() + error.negative.sum())
    return {"anomaly AUROC": anomaly.auroc(), "anomaly AP": anomaly.average_precision(),
            "FPR@95": anomaly.fpr_at_tpr(0.95), "error AUROC": error.auroc(),
            "error AUPR": error.average_precision(), "error rate": float(rate),
            "error AUPR lift": error.average_precision() / rate}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="LABEL=ONNX",
                        help="deployed students; differences are taken against the first")
    parser.add_argument("--data", type=Path, required=True, help="Cityscapes-layout root")
    parser.add_argument("--split", default="val")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    models = dict(spec.split("=", 1) for spec in args.models)
    dataset = CityscapesDataset(args.data, args.split)
    hists = {label: scene_histograms(Path(path), dataset, label)
             for label, path in models.items()}
    full = {label: metrics(h.sum(axis=0)) for label, h in hists.items()}
    rng = np.random.default_rng(args.seed)
    n = len(dataset)
    draws: dict[str, list[dict[str, float]]] = {label: [] for label in models}
    for _ in range(args.resamples):
        weights = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        for label, h in hists.items():
            draws[label].append(metrics(np.tensordot(weights, h, axes=1)))
    names = list(full[next(iter(models))])
    print(f"{n} scenes of {args.data} ({args.split}), {args.resamples} paired resamples")
    print("| model | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for label in models:
        cells = [f"{full[label][k]:.4f} (sd {np.std([d[k] for d in draws[label]]):.4f})"
                 for k in names]
        print(f"| {label} | " + " | ".join(cells) + " |")
    first = next(iter(models))
    for label in list(models)[1:]:
        cells = []
        for k in names:
            diff = np.array([d[k] for d in draws[label]]) - np.array([d[k] for d in draws[first]])
            low, high = np.percentile(diff, [2.5, 97.5])
            cells.append(f"{full[label][k] - full[first][k]:+.4f} [{low:+.4f}, {high:+.4f}]")
        print(f"| {label} - {first} (95 %) | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
