"""One ``dudes evaluate`` run as a library call: load the student (the deployed model through
its backend, or a checkpoint), the teacher ensemble and one member, score them on a
Cityscapes-layout split (and an anomaly benchmark), and write the report.

``EvaluationRequest`` holds what the command line gives; its errors name the command line's
options (``--student``, ``--pixel-threshold``, ...), which are its only spelling.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from dudes_ros.errors import UsageError
from dudes_ros.evaluate.report import write_report


@dataclass(frozen=True)
class EvaluationRequest:
    """``data``: Cityscapes-layout root; ``model``: deployed student ONNX (None: the bundled
    one) unless ``student`` names a checkpoint to score instead; ``teacher``: member
    checkpoints or globs; ``member``: the single-member baseline (None: teacher member 0);
    thresholds override the model manifest's; ``input_size`` (H, W) of the checkpoints (None:
    the student's); ``report``: the output folder."""

    data: str
    report: Path
    split: str = "val"
    anomaly_data: Path | None = None
    model: Path | None = None
    student: Path | None = None
    teacher: tuple[str, ...] | None = None
    member: Path | None = None
    backend: str = "auto"
    device: str = "auto"
    pixel_threshold: float | None = None
    frame_threshold: float | None = None
    input_size: tuple[int, int] | None = None
    limit: int | None = None
    examples: int = 4


def operating_point(model: Path | None, pixel: float | None, frame: float | None) -> dict:
    """The student's ``pixel``/``frame`` thresholds (None where unknown) and where each came
    from: given, else ``model``'s manifest."""
    from dudes_ros.runtime.manifest import load_manifest

    ood = (load_manifest(model).get("ood") or {}) if model is not None else {}
    point = {}
    for key, given, flag in (("pixel", pixel, "--pixel-threshold"),
                             ("frame", frame, "--frame-threshold")):
        if given is not None:
            if not 0.0 <= given <= 1.0:
                raise UsageError(f"{flag} must lie in [0, 1], got {given}")
            point[key], point[f"{key}_source"] = given, f"given with {flag}"
        elif ood.get(f"{key}_threshold") is not None:
            point[key] = ood[f"{key}_threshold"]
            point[f"{key}_source"] = f"from the manifest of {model}"
        else:
            point[key], point[f"{key}_source"] = None, None
    return point


def load_role_checkpoint(path: Path, role: str, flag: str, device):
    """The network of ``path``, refused (naming ``flag`` and the file) unless it has
    ``role`` (``student`` or ``member``)."""
    from dudes_ros.model.checkpoint import CheckpointError, load_model

    net, ckpt = load_model(path, map_location=device)
    if ckpt["role"] != role:
        source = {"student": "dudes train-student", "member": "dudes train-teacher"}[role]
        raise CheckpointError(f"{flag} {path} is a {ckpt['role']!r} checkpoint; expected a "
                              f"{role!r} checkpoint from {source}")
    return net


def run_evaluation(request: EvaluationRequest) -> tuple[dict, Path]:
    """Score what ``request`` names; returns the results (metrics.json's content) and the
    report's path."""
    import torch

    from dudes_ros.data.anomaly_benchmark import AnomalyBenchmark
    from dudes_ros.data.cityscapes import CityscapesDataset
    from dudes_ros.evaluate.runner import (
        DeployedStudent,
        Evaluator,
        evaluate_anomaly_dataset,
        evaluate_dataset,
        evaluation_device_of,
    )
    from dudes_ros.inference.factory import create_predictor
    from dudes_ros.model.ensemble import load_ensemble
    from dudes_ros.resources import bundled_model
    from dudes_ros.runtime.manifest import load_manifest

    r = request
    deployed = (r.model or bundled_model()) if r.student is None else None
    point = operating_point(r.model or deployed, r.pixel_threshold, r.frame_threshold)
    device = evaluation_device_of(r.device)
    dataset = CityscapesDataset(r.data, r.split)
    anomaly_data = AnomalyBenchmark(r.anomaly_data) if r.anomaly_data else None
    with contextlib.ExitStack() as stack:
        if deployed is not None:
            if not deployed.is_file():
                raise UsageError(f"model {deployed} does not exist; expected a deployed "
                                 "student .onnx (dudes export) or pass --student CHECKPOINT")
            manifest = load_manifest(deployed)
            predictor = stack.enter_context(
                create_predictor(deployed, backend=r.backend, device=r.device))
            student = DeployedStudent(predictor, manifest["input"]["network_input_size"])
            described = (f"deployed model {deployed} "
                         f"({predictor.provenance().get('backend')} backend)")
        else:
            student = load_role_checkpoint(r.student, "student", "--student", device)
            described = f"checkpoint {r.student}"
        teacher = load_ensemble(list(r.teacher), map_location=device) if r.teacher else None
        member = None
        if r.member:
            member = load_role_checkpoint(r.member, "member", "--member", device)
        elif teacher is not None:
            member = teacher.members[0]
        size = r.input_size or tuple(student.input_size if deployed is not None
                                     else student.config.input_size)
        with torch.no_grad():
            evaluator = Evaluator(student, teacher, member, input_size=size, device=device,
                                  pixel_threshold=point["pixel"], frame_threshold=point["frame"],
                                  examples=r.examples)
            evaluate_dataset(evaluator, dataset, r.limit)
            if anomaly_data is not None:
                evaluate_anomaly_dataset(evaluator, anomaly_data, r.limit)
            results = evaluator.results()
    results["data"] = {"root": str(r.data), "split": r.split, "device": str(device),
                       "anomaly_data": str(r.anomaly_data) if r.anomaly_data else None,
                       "student": described, "teacher": list(r.teacher) if r.teacher else None,
                       "member": (str(r.member) if r.member
                                  else "teacher member 0" if teacher else None)}
    results["operating_point"] = point
    return results, write_report(results, evaluator.examples, r.report)
