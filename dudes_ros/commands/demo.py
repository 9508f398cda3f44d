"""``dudes demo``: the real node on a synthetic drive (or your bag or images); PNGs + summary
(the work: ``dudes_ros.demo.session.run_demo``, whose module doc lists the steps)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dudes_ros.argtypes import image_size
from dudes_ros.config import ConfigError
from dudes_ros.demo.session import (
    BAG_DIR,
    CONTACT_SHEET,
    NODE_LOG,
    SUMMARY_FILE,
    TIMELINE,
    DemoOptions,
    resolve_model,
    run_demo,
)
from dudes_ros.demo.sources import Drive, bag_drive, image_folder_drive, synthetic_drive
from dudes_ros.ood import DEFAULT_CLEAR_AFTER, DEFAULT_RAISE_AFTER


def _positive(kind: type):
    def parse(text: str):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
        return value
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("what to play (default: a synthetic drive)")
    choice = source.add_mutually_exclusive_group()
    choice.add_argument("--bag", type=Path, help="play the images of a bag (rosbag2 or ROS 1)")
    choice.add_argument("--images", type=Path, help="play a folder of images in name order")
    source.add_argument("--topic", help="image topic of --bag (needed when it has several)")
    source.add_argument("--max-frames", type=int, default=0,
                        help="play at most this many frames of --bag/--images (0 = all)")
    source.add_argument("--frames", type=_positive(int), default=72,
                        help="synthetic drive length (default 72)")
    source.add_argument("--enter", type=int, default=24,
                        help="synthetic drive: frame at which the anomaly enters (default 24)")
    source.add_argument("--leave", type=int, default=48,
                        help="synthetic drive: frame at which it has left (default 48)")
    source.add_argument("--seed", type=int, default=4,
                        help="synthetic drive seed (default 4: a horse cut from a cat photo)")
    source.add_argument("--size", type=image_size, default=(256, 512),
                        help="synthetic frame size HEIGHTxWIDTH (default 256x512; the model "
                             "resizes in its graph)")
    parser.add_argument("--model", type=Path,
                        help="exported student .onnx (manifest beside it) or .pt checkpoint; "
                             "default: the bundled engines/dudes_student.onnx")
    parser.add_argument("--output", type=Path, default=Path("demo_output"),
                        help="output folder (default demo_output; a previous demo output "
                             "there is replaced)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUTPUT even when it is not a previous demo output")
    parser.add_argument("--rate", type=_positive(float), default=10.0,
                        help="camera rate in Hz (default 10); frames wait for the node")
    ood = parser.add_argument_group("OOD alarm (default: the model manifest's calibration)")
    ood.add_argument("--pixel-threshold", type=float, help="a pixel is uncertain when u > this")
    ood.add_argument("--frame-threshold", type=float,
                     help="a frame is over threshold when its uncertain fraction > this")
    ood.add_argument("--raise-after", type=_positive(int), default=DEFAULT_RAISE_AFTER,
                     help="alarm after this many frames over threshold (default "
                          f"{DEFAULT_RAISE_AFTER})")
    ood.add_argument("--clear-after", type=_positive(int), default=DEFAULT_CLEAR_AFTER,
                     help=f"clear after this many frames under threshold (default "
                          f"{DEFAULT_CLEAR_AFTER})")
    parser.add_argument("--startup-timeout", type=_positive(float), default=120.0,
                        help="seconds to wait for the node to come up (default 120)")
    parser.add_argument("--frame-timeout", type=_positive(float), default=30.0,
                        help="seconds to wait for one frame's outputs (default 30)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--strict", action="store_true",
                        help="exit 3 when a synthetic-drive check fails (alarm within 5 frames "
                             "of entry, cleared after leaving, no false alarm)")


def make_drive(args: argparse.Namespace) -> Drive:
    if args.bag is not None:
        return bag_drive(args.bag, args.topic, args.max_frames)
    if args.images is not None:
        return image_folder_drive(args.images, args.max_frames)
    return synthetic_drive(args.seed, args.size, args.frames, args.enter, args.leave)


def options_from_args(args: argparse.Namespace) -> DemoOptions:
    return DemoOptions(output=args.output, overwrite=args.overwrite, rate=args.rate,
                       pixel_threshold=args.pixel_threshold,
                       frame_threshold=args.frame_threshold, raise_after=args.raise_after,
                       clear_after=args.clear_after, startup_timeout=args.startup_timeout,
                       frame_timeout=args.frame_timeout, progress=not args.no_progress)


def run(args: argparse.Namespace) -> int:
    from dudes_ros.bag.reader import BagError
    from dudes_ros.demo.camera import NodeFailed
    from dudes_ros.demo.report import format_summary

    model = resolve_model(args.model)
    if model is None:
        print("dudes demo: no bundled student in engines/ (dudes_student.onnx + .json); pass "
              "--model PATH to run on an exported model. Nothing was run.", file=sys.stderr)
        return 2
    if not model.is_file():
        print(f"dudes demo: --model {model}: no such file; expected an exported .onnx (with "
              "its .json manifest) or a .pt student checkpoint", file=sys.stderr)
        return 2
    try:
        if args.topic and args.bag is None:
            raise ValueError("--topic needs --bag")
        summary = run_demo(model, lambda: make_drive(args), options_from_args(args))
    except (ConfigError, BagError, NodeFailed, ValueError, OSError, ImportError) as exc:
        print(f"dudes demo: {exc}", file=sys.stderr)
        return 1
    print(format_summary(summary))
    print(f"written: {args.output}/ ({CONTACT_SHEET}, {TIMELINE}, {SUMMARY_FILE}, {BAG_DIR}/, "
          f"{NODE_LOG}); total {summary['timings_s']['total']:.1f} s")
    failed = [name for name, ok in (summary["checks"] or {}).items() if not ok]
    if failed and args.strict:
        print(f"dudes demo: --strict: check(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 3
    return 0
