"""Evaluate the student, the teacher ensemble and one member on a Cityscapes-layout split.

Every model sees the same frames, resized to one network input size; its class probabilities
and uncertainty maps are upsampled (bilinear) back to the label resolution before scoring, so
all methods are scored on the same pixels. The student is either a checkpoint (run like the
others) or the deployed model itself (``DeployedStudent``: the exported graph through a
``Predictor`` backend, as on the vehicle; it resizes inside the graph and returns labels and
u_S at the frame's resolution, but no class probabilities, so it has no ECE or reliability
diagram). Uncertainty scores per method:

========================  =========  ======================================================
method                    model      score in [0, 1]
========================  =========  ======================================================
``student_u``             student    u_S, the distilled uncertainty head (1 forward pass)
``teacher_std``           teacher    u_T = std over members of p(predicted class) (M passes)
``teacher_entropy``       teacher    entropy of the mean softmax / log C
``teacher_mi``            teacher    mutual information / log C
``member_max_softmax``    member     1 - max softmax (1 pass)
``member_entropy``        member     softmax entropy / log C
========================  =========  ======================================================

Latency is the median wall time of the model's forward passes per frame (first frame excluded
as warm-up) on the device used, at the network input size; for a deployed student, of the whole
``predict`` call on the frame (in-graph normalisation and resizing included).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias
from tqdm import tqdm

from dudes_ros.errors import UsageError
from dudes_ros.evaluate import metrics as mt
from dudes_ros.evaluate import report_format as fmt
from dudes_ros.inference.predictor import Predictor
from dudes_ros.labels import CLASS_NAMES
from dudes_ros.model.config import ModelConfig
from dudes_ros.model.ensemble import Ensemble
from dudes_ros.model.student import SegmentationNet, normalize
from dudes_ros.uncertainty import normalized_entropy

METHODS: dict[str, tuple[str, str, str]] = {
    # name -> (model, map key, description)
    "student_u": ("student", "u", "student u_S (DUDES)"),
    "teacher_std": ("teacher", "u_t", "teacher u_T (std of p(y_hat))"),
    "teacher_entropy": ("teacher", "entropy", "teacher entropy"),
    "teacher_mi": ("teacher", "mutual_information", "teacher mutual information"),
    "member_max_softmax": ("member", "max_softmax", "one member 1 - max softmax"),
    "member_entropy": ("member", "entropy", "one member entropy"),
}


@dataclass
class ModelScores:
    """Segmentation and calibration state of one model, plus its forward-pass timings."""

    forward_passes: int
    confusion: mt.ConfusionMatrix = field(default_factory=mt.ConfusionMatrix)
    calibration: mt.CalibrationError = field(default_factory=mt.CalibrationError)
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        """ECE and reliability are None for a model that gives no class probabilities."""
        timed = self.latencies_ms[1:] or self.latencies_ms
        calibration = self.calibration.compute()
        calibrated = bool(calibration["pixels"])
        return {"forward_passes": self.forward_passes,
                "latency_ms": statistics.median(timed) if timed else None,
                "segmentation": fmt.segmentation(self.confusion.compute(), CLASS_NAMES),
                "ece": calibration["ece"] if calibrated else None,
                "reliability": fmt.reliability(calibration) if calibrated else None}


@dataclass
class MethodScores:
    """Error-detection and OOD state of one uncertainty score."""

    errors: mt.UncertaintyErrorMetrics
    ood: mt.OodMetrics

    def summary(self) -> dict:
        errors = fmt.uncertainty_errors(self.errors.compute())
        threshold = errors["at_threshold"]["threshold"]
        return {"errors": errors, "error_curves": fmt.curves(self.errors.errors),
                "ood": fmt.ood(self.ood.compute(threshold)),
                "ood_curves": fmt.curves(self.ood.pixels)}


class DeployedStudent:
    """The deployed student: a ``Predictor`` (exported graph on a backend) and its network
    input size, scored as the ``student`` model."""

    def __init__(self, predictor: Predictor, input_size: tuple[int, int]) -> None:
        self.predictor = predictor
        self.input_size = tuple(input_size)

    def predict(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(labels int64 [H, W], u float32 [H, W])`` for ``image uint8 [H, W, 3]``."""
        labels, u = self.predictor.predict(np.ascontiguousarray(image)[None])
        return labels[0].astype(np.int64), np.clip(u[0], 0.0, 1.0).astype(np.float32)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Evaluator:
    """Runs the models frame by frame and feeds the streaming metrics.

    ``student`` (a checkpoint's network or a ``DeployedStudent``) is required; ``teacher`` and
    ``member`` are optional (their rows and the student-vs-teacher agreement are left out
    without them). ``pixel_threshold`` and ``frame_threshold`` are the student's operating
    thresholds (from its manifest); methods without one are scored at their PAvPU-optimal
    threshold.
    """

    def __init__(self, student: SegmentationNet | DeployedStudent,
                 teacher: Ensemble | None = None,
                 member: SegmentationNet | None = None, *, input_size: tuple[int, int],
                 device: torch.device, pixel_threshold: float | None = None,
                 frame_threshold: float | None = None, examples: int = 0) -> None:
        if isinstance(student, SegmentationNet) and student.uncertainty_head is None:
            raise ValueError("the student network has no uncertainty head; "
                             "pass a DUDES student (role 'student'), not a teacher member")
        self.models: dict[str, torch.nn.Module | DeployedStudent] = {"student": student}
        if teacher is not None:
            self.models["teacher"] = teacher
        if member is not None:
            self.models["member"] = member
        self.input_size = input_size
        self.device = device
        self.scores = {name: ModelScores(len(model) if isinstance(model, Ensemble) else 1)
                       for name, model in self.models.items()}
        self.methods = {}
        for name, (model, _, _) in METHODS.items():
            if model not in self.models:
                continue
            is_student = model == "student"
            self.methods[name] = MethodScores(
                mt.UncertaintyErrorMetrics(pixel_threshold if is_student else None),
                mt.OodMetrics(pixel_threshold if is_student else None,
                              frame_threshold if is_student else None))
        # the same scores on an anomaly benchmark (``update_anomaly``), kept apart
        self.benchmark = {name: mt.OodMetrics(scores.ood.pixel_threshold,
                                              scores.ood.frame_threshold)
                          for name, scores in self.methods.items()}
        self.benchmark_frames = 0
        self.agreement = mt.StudentTeacherAgreement() if teacher is not None else None
        self.examples_wanted = examples
        self.examples: list[dict] = []
        self.frames = 0

    def _config(self, name: str) -> ModelConfig:
        return self.models[name].config

    @torch.no_grad()
    def _run(self, name: str, image: np.ndarray) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Probabilities ``[1, C, h, w]`` and score maps ``{key: [1, h, w]}`` at network size."""
        model = self.models[name]
        x = torch.from_numpy(image).unsqueeze(0).to(self.device)
        x = normalize(x, self._config(name))
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        _sync(self.device)
        start = time.perf_counter()
        if isinstance(model, Ensemble):
            st = model.statistics(x)
            _sync(self.device)
            probs = st.mean_probs
            log_c = math.log(probs.shape[1])
            maps = {"u_t": st.target_std, "entropy": st.entropy / log_c,
                    "mutual_information": st.mutual_information / log_c}
        else:
            logits, u = model(x)
            _sync(self.device)
            logits = logits.float()
            probs = logits.softmax(dim=1)
            maps = {"max_softmax": 1.0 - probs.amax(dim=1), "entropy": normalized_entropy(logits)}
            if u is not None:
                maps["u"] = u[:, 0].float()
        self.scores[name].latencies_ms.append(1000.0 * (time.perf_counter() - start))
        return probs, maps

    @staticmethod
    def _to_label_size(probs: torch.Tensor, maps: dict[str, torch.Tensor],
                       size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, dict]:
        """(prediction int64 [H, W], confidence float32 [H, W], maps float32 [H, W])."""
        keys = list(maps)
        stacked = torch.cat([probs, torch.stack([maps[k] for k in keys], dim=1)], dim=1)
        if tuple(stacked.shape[-2:]) != size:
            stacked = F.interpolate(stacked, size=size, mode="bilinear", align_corners=False)
        c = probs.shape[1]
        conf, pred = stacked[0, :c].max(dim=0)
        out = {k: stacked[0, c + i].clamp(0.0, 1.0).cpu().numpy() for i, k in enumerate(keys)}
        return pred.cpu().numpy(), conf.cpu().numpy(), out

    def update(self, item: dict) -> None:
        """Score one dataset item ``{"image": uint8 [H, W, 3], "labels": uint8 [H, W],
        "anomaly": bool [H, W] or None, ...}``."""
        image, gt, anomaly = item["image"], item["labels"], item.get("anomaly")
        size = tuple(gt.shape)
        outputs = {}
        for name in self.models:
            pred, conf, maps_np = self._predict(name, image, size)
            valid = gt != 255
            sc = self.scores[name]
            sc.confusion.update(pred, gt)
            if conf is not None:
                sc.calibration.update(conf[valid], (pred == gt)[valid])
            for method, (model, key, _) in METHODS.items():
                if model == name:
                    self.methods[method].errors.update(pred, maps_np[key], gt)
                    self.methods[method].ood.update(maps_np[key], anomaly, gt)
            outputs[name] = (pred, maps_np)
        if self.agreement is not None:
            self.agreement.update(outputs["student"][1]["u"], outputs["teacher"][1]["u_t"], gt)
        if len(self.examples) < self.examples_wanted:
            self.examples.append(self._example(item, outputs))
        self.frames += 1

    def update_anomaly(self, item: dict) -> None:
        """Score one anomaly-benchmark item (``AnomalyBenchmark``: ``labels`` only mark void
        pixels, ``anomaly`` the OOD ones): OOD metrics only, apart from the main data's."""
        size = tuple(item["labels"].shape)
        for name in self.models:
            timed = len(self.scores[name].latencies_ms)
            _, _, maps_np = self._predict(name, item["image"], size)
            # latency stays the main data's: benchmark frames may have another size
            del self.scores[name].latencies_ms[timed:]
            for method, (model, key, _) in METHODS.items():
                if model == name:
                    self.benchmark[method].update(maps_np[key], item["anomaly"], item["labels"])
        self.benchmark_frames += 1

    def _predict(self, name: str, image: np.ndarray,
                 size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None, dict]:
        """(prediction [H, W], confidence [H, W] or None, score maps [H, W]) at label size."""
        model = self.models[name]
        if isinstance(model, DeployedStudent):
            start = time.perf_counter()
            labels, u = model.predict(image)
            self.scores[name].latencies_ms.append(1000.0 * (time.perf_counter() - start))
            if labels.shape != size:
                raise ValueError(f"the deployed model returned {labels.shape} labels for a "
                                 f"{size} label image")
            return labels, None, {"u": u}
        probs, maps = self._run(name, image)
        return self._to_label_size(probs, maps, size)

    @staticmethod
    def _example(item: dict, outputs: dict, width: int = 512) -> dict:
        """Downsampled panel data (bounded: a few frames at most ``width`` wide)."""
        gt = item["labels"]
        step = max(1, math.ceil(gt.shape[1] / width))
        sl = (slice(None, None, step), slice(None, None, step))
        pred, maps = outputs["student"]
        ex = {"path": item.get("path", ""), "image": item["image"][sl], "gt": gt[sl],
              "pred": pred[sl].astype(np.uint8), "u_s": maps["u"][sl]}
        if "teacher" in outputs:
            ex["u_t"] = outputs["teacher"][1]["u_t"][sl]
        if item.get("anomaly") is not None:
            ex["anomaly"] = item["anomaly"][sl]
        return ex

    def results(self) -> dict:
        """All metrics as JSON-ready data, with the comparison table under ``comparison``."""
        models = {name: sc.summary() for name, sc in self.scores.items()}
        methods = {name: ms.summary() for name, ms in self.methods.items()}
        out = {"frames": self.frames, "input_size": list(self.input_size),
               "models": models, "methods": methods,
               "student_vs_teacher": (fmt.agreement(self.agreement.compute(), CLASS_NAMES)
                                      if self.agreement is not None else None)}
        benchmark = None
        if self.benchmark_frames:
            benchmark = {"frames": self.benchmark_frames, "methods": {
                name: {"ood": fmt.ood(ood.compute(
                    methods[name]["errors"]["at_threshold"]["threshold"])),
                       "ood_curves": fmt.curves(ood.pixels)}
                for name, ood in self.benchmark.items()}}
            out["anomaly_benchmark"] = benchmark
        out["comparison"] = comparison_table(models, methods, benchmark)
        return out


def comparison_table(models: dict, methods: dict, benchmark: dict | None = None) -> list[dict]:
    """One row per uncertainty method: its model's cost and accuracy next to its scores. The
    anomaly columns come from ``benchmark`` (``results()["anomaly_benchmark"]``) when given,
    else from the main data's anomaly masks (``anomaly_data`` says which)."""
    rows = []
    for name, summary in methods.items():
        model, _, description = METHODS[name]
        ms = models[model]
        err = summary["errors"]
        ood = benchmark["methods"][name]["ood"] if benchmark else summary["ood"]
        rows.append({
            "method": name, "description": description, "model": model,
            "forward_passes": ms["forward_passes"], "latency_ms": ms["latency_ms"],
            "miou": ms["segmentation"]["miou"], "ece": ms["ece"],
            "error_auroc": err["misclassification"]["auroc"],
            "error_aupr": err["misclassification"]["average_precision"],
            "pavpu": err["at_threshold"]["pavpu"],
            "pixel_threshold": err["at_threshold"]["threshold"],
            "anomaly_auroc": ood["pixel"]["auroc"],
            "anomaly_ap": ood["pixel"]["average_precision"],
            "anomaly_fpr95": ood["pixel"]["fpr_at_95_tpr"],
            "frame_auroc": ood["frame"]["auroc"],
            "anomaly_data": "benchmark" if benchmark else "data",
        })
    return rows


def evaluate_dataset(evaluator: Evaluator, dataset, limit: int | None = None) -> dict:
    """Feed ``dataset`` items (``CityscapesDataset``-like) through ``evaluator``."""
    count = len(dataset) if limit is None else min(limit, len(dataset))
    if count == 0:
        raise UsageError(f"no frames to evaluate (the dataset has {len(dataset)}, --limit is "
                         f"{limit}); expected at least one")
    for index in tqdm(range(count), desc="evaluate", unit="frame"):
        evaluator.update(dataset[index])
    return evaluator.results()


def evaluate_anomaly_dataset(evaluator: Evaluator, dataset, limit: int | None = None) -> None:
    """Feed anomaly-benchmark items (``AnomalyBenchmark``-like) through
    ``evaluator.update_anomaly``; ``results()`` then holds ``anomaly_benchmark``."""
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for index in tqdm(range(count), desc="anomaly data", unit="frame"):
        evaluator.update_anomaly(dataset[index])


def evaluation_device_of(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UsageError(f"device {name!r}: {exc}; expected auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} requested but torch sees no CUDA GPU; expected "
                         "auto or cpu here")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UsageError(f"device {name!r}: torch sees {torch.cuda.device_count()} CUDA "
                         f"GPU(s) (cuda:0..cuda:{torch.cuda.device_count() - 1})")
    return device

