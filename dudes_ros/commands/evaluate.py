"""``dudes evaluate``: score the student (deployed model or checkpoint), the teacher ensemble
and one member on a Cityscapes-layout split; write metrics JSON, a Markdown report and plots
(the work: ``dudes_ros.evaluate.evaluation.run_evaluation``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from dudes_ros.argtypes import image_size, positive_int
from dudes_ros.errors import UsageError
from dudes_ros.evaluate.evaluation import EvaluationRequest, run_evaluation
from dudes_ros.evaluate.report import anomaly_note, comparison_markdown
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


def run(args: argparse.Namespace) -> int:
    if not args.data:
        raise UsageError("no data; pass --data ROOT or set CITYSCAPES_DATASET")
    results, report = run_evaluation(EvaluationRequest(
        data=args.data, report=Path(args.report), split=args.split,
        anomaly_data=args.anomaly_data, model=args.model, student=args.student,
        teacher=tuple(args.teacher) if args.teacher else None, member=args.member,
        backend=args.backend, device=args.device, pixel_threshold=args.pixel_threshold,
        frame_threshold=args.frame_threshold, input_size=args.input_size, limit=args.limit,
        examples=args.examples))
    print(comparison_markdown(results["comparison"]))
    print(anomaly_note(results))
    print(f"report: {report}")
    return 0
