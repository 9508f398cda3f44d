"""``dudes evaluate``: score the student (deployed model or checkpoint), the teacher ensemble
and one member on a Cityscapes-layout split; write metrics JSON, a Markdown report and plots
(the work: ``dudes_ros.evaluate.runner`` and ``dudes_ros.evaluate.report``)."""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

from dudes_ros.argtypes import image_size, positive_int
from dudes_ros.errors import UsageError
from dudes_ros.evaluate.report import anomaly_note, comparison_markdown, write_report
from dudes_ros.inference.factory import BACKENDS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=os.environ.get("CITYSCAPES_DATASET"),
                        help="Cityscapes-layout root (default: $CITYSCAPES_DATASET)")
    parser.add_argument("--split", default="val", help="split folder (default: val)")
    parser.add_argument("--anomaly-data", type=Path, default=None, metavar="DIR",
                        help="anomaly benchmark for the anomaly columns: DIR/images/ plus "
                             "per-image OOD masks DIR/labels/<name>.png (1 = anomaly, 0 = "
                             "in-distribution, 255 = void), as Fishyscapes Lost & Found or "
                             "Road Anomaly. Without it they come from the data's "
                             "*_gtFine_anomalyMask.png files (Cityscapes has none: n/a)")
    parser.add_argument("--model", type=Path, default=None,
                        help="deployed student ONNX (manifest beside it). Without --student it "
                             "is the student scored, through --backend as on the vehicle "
                             "(default: the bundled engines/dudes_student.onnx); its manifest's "
                             "OOD thresholds are the student's operating point")
    parser.add_argument("--student", type=Path, default=None,
                        help="score this student checkpoint (.pt, torch) instead of the "
                             "deployed model; adds its ECE and reliability diagram")
    parser.add_argument("--teacher", nargs="+", default=None, metavar="CHECKPOINT",
                        help="teacher member checkpoints (paths or globs, at least 2): adds "
                             "the teacher rows and the u_S vs u_T agreement")
    parser.add_argument("--member", type=Path, default=None,
                        help="the single-member baseline checkpoint (default: first teacher "
                        "member)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="backend that runs the deployed model (default: auto)")
    parser.add_argument("--pixel-threshold", type=float, default=None,
                        help="student pixel threshold (overrides the manifest)")
    parser.add_argument("--frame-threshold", type=float, default=None,
                        help="student frame OOD threshold (overrides the manifest)")
    parser.add_argument("--input-size", type=image_size, metavar="HxW", default=None,
                        help="network input size of the checkpoints (default: the student's)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="evaluate the first N frames")
    parser.add_argument("--examples", type=int, default=4, help="example panels (default 4)")
    parser.add_argument("--report", required=True, help="output folder")


def _thresholds(args: argparse.Namespace, model: Path | None) -> dict:
    """The student's operating point: ``pixel``/``frame`` thresholds (None where unknown) and
    where each came from."""
    from dudes_ros.runtime.manifest import load_manifest

    ood = (load_manifest(model).get("ood") or {}) if model is not None else {}
    point = {}
    for key, given, flag in (("pixel", args.pixel_threshold, "--pixel-threshold"),
                             ("frame", args.frame_threshold, "--frame-threshold")):
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


def _load_checkpoint(path: Path, role: str, flag: str, device):
    """The network of ``path``, refused (naming flag and file) unless it has ``role``."""
    from dudes_ros.model.checkpoint import CheckpointError, load_model

    net, ckpt = load_model(path, map_location=device)
    if ckpt["role"] != role:
        source = {"student": "dudes train-student", "member": "dudes train-teacher"}[role]
        raise CheckpointError(f"{flag} {path} is a {ckpt['role']!r} checkpoint; expected a "
                              f"{role!r} checkpoint from {source}")
    return net


def run(args: argparse.Namespace) -> int:
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

    if not args.data:
        raise UsageError("no data; pass --data ROOT or set CITYSCAPES_DATASET")
    deployed = (args.model or bundled_model()) if args.student is None else None
    point = _thresholds(args, args.model or deployed)
    device = evaluation_device_of(args.device)
    dataset = CityscapesDataset(args.data, args.split)
    anomaly_data = AnomalyBenchmark(args.anomaly_data) if args.anomaly_data else None
    with contextlib.ExitStack() as stack:
        if deployed is not None:
            if not deployed.is_file():
                raise UsageError(f"model {deployed} does not exist; expected a deployed "
                                 "student .onnx (dudes export) or pass --student CHECKPOINT")
            manifest = load_manifest(deployed)
            predictor = stack.enter_context(
                create_predictor(deployed, backend=args.backend, device=args.device))
            student = DeployedStudent(predictor, manifest["input"]["network_input_size"])
            described = (f"deployed model {deployed} "
                         f"({predictor.provenance().get('backend')} backend)")
        else:
            student = _load_checkpoint(args.student, "student", "--student", device)
            described = f"checkpoint {args.student}"
        teacher = (load_ensemble(args.teacher, map_location=device) if args.teacher else None)
        member = None
        if args.member:
            member = _load_checkpoint(args.member, "member", "--member", device)
        elif teacher is not None:
            member = teacher.members[0]
        size = args.input_size or tuple(student.input_size if deployed is not None
                                        else student.config.input_size)
        with torch.no_grad():
            evaluator = Evaluator(student, teacher, member, input_size=size, device=device,
                                  pixel_threshold=point["pixel"], frame_threshold=point["frame"],
                                  examples=args.examples)
            evaluate_dataset(evaluator, dataset, args.limit)
            if anomaly_data is not None:
                evaluate_anomaly_dataset(evaluator, anomaly_data, args.limit)
            results = evaluator.results()
    results["data"] = {"root": str(args.data), "split": args.split, "device": str(device),
                       "anomaly_data": str(args.anomaly_data) if args.anomaly_data else None,
                       "student": described, "teacher": args.teacher,
                       "member": (str(args.member) if args.member
                                  else "teacher member 0" if teacher else None)}
    results["operating_point"] = point
    report = write_report(results, evaluator.examples, args.report)
    print(comparison_markdown(results["comparison"]))
    print(anomaly_note(results))
    print(f"report: {report}")
    return 0
