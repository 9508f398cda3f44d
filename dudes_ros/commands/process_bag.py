"""``dudes process-bag IN OUT``: run the student over a bag's image topics, write an output bag
and its report (the work: ``dudes_ros.bag.process.process_bag``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dudes_ros.bag.process import (
    DEFAULT_OUTPUTS,
    STORAGES,
    SUMMARY_FILE,
    TIMELINE_FILE,
    ProcessOptions,
    process_bag,
    select_input_topics,
)
from dudes_ros.bag.reader import BagError, BagReader
from dudes_ros.bag.staging import check_destination
from dudes_ros.bag.summary import format_bag_summary, synthetic_model_warning
from dudes_ros.config import ConfigError
from dudes_ros.ground import FlatGround
from dudes_ros.inference.factory import BACKENDS
from dudes_ros.messages.outputs import OUTPUT_TOPICS
from dudes_ros.ood import DEFAULT_CLEAR_AFTER, DEFAULT_RAISE_AFTER
from dudes_ros.perception import OodConfig


def parse_output_scale(text: str) -> float:
    """argparse type: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number in (0, 1]")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="rosbag2 directory (sqlite3 or MCAP), single "
                        ".mcap/.db3 file, or ROS 1 .bag file")
    parser.add_argument("output", type=Path, help="output rosbag2 directory (must not exist "
                        "unless --overwrite)")
    parser.add_argument("--model", type=Path, default=None,
                        help="student .onnx (with its .json manifest beside it) or .pt "
                        "checkpoint (default: the bundled engines/dudes_student.onnx)")
    parser.add_argument("--backend", default="auto",
                        choices=BACKENDS)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--topics", nargs="+", default=(), metavar="TOPIC",
                        help="image topics to process (default: every Image/CompressedImage "
                        "topic except this package's outputs, <ns>/segmentation, "
                        "<ns>/uncertainty, <ns>/confidence and their /color). Outputs go "
                        "under the camera namespace: the topic without its image name and "
                        "without a /compressed transport suffix, so /camera/image_raw and "
                        "/camera/image_raw/compressed both write /camera/segmentation, ...; "
                        "a top-level /image writes /segmentation, ...")
    parser.add_argument("--outputs", nargs="+", choices=list(OUTPUT_TOPICS),
                        default=None, metavar="OUTPUT",
                        help="output topics to write per camera, any of "
                        f"{', '.join(OUTPUT_TOPICS)} (default: {' '.join(DEFAULT_OUTPUTS)}). "
                        "At 1280x720: segmentation and confidence 0.9 MB per frame each, "
                        "uncertainty (32FC1) 3.7 MB, each /color 2.8 MB; the report gives "
                        "the bytes per frame written")
    parser.add_argument("--output-scale", type=parse_output_scale, default=1.0, metavar="S",
                        help="size of the image outputs relative to the input, in (0, 1], as "
                        "the node's output_scale (labels nearest neighbour, uncertainty area "
                        "averaging; the OOD score is still taken at full size; default 1.0)")
    parser.add_argument("--format", dest="storage", choices=sorted(STORAGES), default=None,
                        help="output storage (default: as the input; MCAP for ROS 1 input)")
    parser.add_argument("--include-inputs", action="store_true",
                        help="also copy the processed input images, the sensor_msgs/CameraInfo "
                        "topics in their camera namespaces (e.g. /camera/camera_info) and "
                        "/tf_static into the output bag, so it can be viewed on its own "
                        "(camera_info describes the input size, not a scaled output's)")
    parser.add_argument("--color", action="store_true",
                        help="also write <ns>/segmentation/color (rgb8 palette); the same as "
                        "adding segmentation/color to --outputs")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    where = parser.add_argument_group(
        "anomaly regions (ood/mask, ood/regions, ood/points; as the node's regions.* and "
        "ground.* parameters)")
    where.add_argument("--ground-height", type=float, default=0.0, metavar="M",
                       help="camera height above a level road, metres: writes ood/points, each "
                       "region's ground contact through the bag's camera_info beside the image "
                       "(default 0: no ood/points)")
    where.add_argument("--ground-pitch", type=float, default=0.0, metavar="RAD",
                       help="camera pitch, radians, positive = down (default 0)")
    where.add_argument("--segmentation-class", type=int, default=-1, metavar="ID",
                       help="write anomalous pixels into segmentation as this class id (0-255), "
                       "for nav2's semantic_segmentation_layer (default -1: off)")
    ood = parser.add_argument_group("OOD alarm (defaults: the model manifest's calibration)")
    ood.add_argument("--pixel-threshold", type=float, default=None)
    ood.add_argument("--frame-threshold", type=float, default=None)
    ood.add_argument("--raise-after", type=int, default=None,
                     help="frames over threshold before the alarm rises (default "
                          f"{DEFAULT_RAISE_AFTER})")
    ood.add_argument("--clear-after", type=int, default=None,
                     help="frames under threshold before it clears (default "
                          f"{DEFAULT_CLEAR_AFTER})")


def ood_from_args(args: argparse.Namespace, model: Path) -> OodConfig:
    """OOD settings: the ONNX ``model``'s manifest calibration, overridden by the flags."""
    from dudes_ros.runtime.manifest import ood_calibration

    overrides = {name: getattr(args, name) for name in
                 ("pixel_threshold", "frame_threshold", "raise_after", "clear_after")}
    return OodConfig.from_calibration(ood_calibration(model), **overrides)


def ground_from_args(args: argparse.Namespace) -> FlatGround | None:
    """The flat road of ``--ground-height``/``--ground-pitch``; None for height 0 (no points)."""
    if args.ground_height == 0.0:
        return None
    return FlatGround(args.ground_height, args.ground_pitch)


def _choose_before_loading(args: argparse.Namespace) -> tuple[str, ...]:
    """The topics to process, chosen and announced before the model loads."""
    with BagReader(args.input) as bag:
        chosen, skipped = select_input_topics(bag, tuple(args.topics))
    if skipped:
        print(f"skipping {len(skipped)} output topic(s) of dudes_ros: {', '.join(skipped)} "
              "(name them with --topics to process them)")
    print(f"processing {', '.join(t.topic for t in chosen)}")
    return tuple(t.topic for t in chosen)


def chosen_outputs(args: argparse.Namespace) -> tuple[str, ...]:
    """``--outputs`` (default ``DEFAULT_OUTPUTS``) plus segmentation/color with --color."""
    chosen = set(args.outputs or DEFAULT_OUTPUTS) | (
        {"segmentation/color"} if args.color else set())
    return tuple(name for name in OUTPUT_TOPICS if name in chosen)


def run(args: argparse.Namespace) -> int:
    from dudes_ros.inference.factory import create_predictor
    from dudes_ros.model.checkpoint import CheckpointError
    from dudes_ros.resources import bundled_model
    from dudes_ros.runtime.manifest import ManifestError, model_trained_on

    model = args.model or bundled_model()  # as the node and the demo do
    try:
        check_destination(args.output, args.overwrite)
        if not model.is_file():
            raise FileNotFoundError(f"model {model} does not exist" + (
                "" if args.model else " (the bundled student; pass --model STUDENT.onnx)"))
        options = ProcessOptions(topics=_choose_before_loading(args), storage=args.storage,
                                 include_inputs=args.include_inputs,
                                 outputs=chosen_outputs(args), output_scale=args.output_scale,
                                 overwrite=args.overwrite, progress=not args.no_progress,
                                 segmentation_class=args.segmentation_class,
                                 ground=ground_from_args(args))
        ood = ood_from_args(args, model)
        trained_on = model_trained_on(model)
        warning = synthetic_model_warning(trained_on)
        if warning:
            print(warning)
        with create_predictor(model, backend=args.backend, device=args.device) as predictor:
            summary = process_bag(args.input, args.output, predictor, ood, options, trained_on)
    except (BagError, ConfigError, ManifestError, CheckpointError, FileExistsError,
            FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        print(f"dudes process-bag: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, read-only filesystem, I/O error while writing
        print(f"dudes process-bag: error: {exc} while processing {args.input} into "
              f"{args.output}; nothing was written to {args.output}", file=sys.stderr)
        return 2
    print(format_bag_summary(summary))
    print(f"wrote {args.output} ({summary['output_format']}) with {SUMMARY_FILE} and "
          f"{TIMELINE_FILE}")
    return 0
