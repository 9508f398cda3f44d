"""``dudes demo``: the real node on a synthetic drive (or your bag or images); PNGs + summary.

1. start the dudes node (real rclpy, backend auto -> ONNX Runtime on a CPU machine) in its own
   process, thresholds from the model's manifest unless overridden;
2. meanwhile render a synthetic drive in which a real-photo anomaly enters the road and later
   leaves (or open ``--bag``/``--images``);
3. publish the drive as a camera from this process, paced so the node processes every frame,
   and record inputs and outputs to an MCAP bag;
4. write OUTPUT/ (contact_sheet.png, ood_timeline.png, summary.json, bag/, node.log) and print
   the summary. OUTPUT appears all at once (built in a sibling folder, renamed on success).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from dudes_ros.argtypes import image_size
from dudes_ros.bag.staging import staged_output
from dudes_ros.config import ConfigError
from dudes_ros.demo.sources import Drive, bag_drive, image_folder_drive, synthetic_drive
from dudes_ros.ood import DEFAULT_CLEAR_AFTER, DEFAULT_RAISE_AFTER

KIND = "dudes demo"
NAMESPACE = "/dudes_demo"
SUMMARY_FILE = "summary.json"
CONTACT_SHEET = "contact_sheet.png"
TIMELINE = "ood_timeline.png"
BAG_DIR = "bag"
NODE_LOG = "node.log"


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


def resolve_model(model: Path | None) -> Path | None:
    """``model`` or the bundled student; None when the bundled one is not there."""
    if model is not None:
        return model
    from dudes_ros.resources import bundled_model

    bundled = bundled_model()
    return bundled if bundled.is_file() and bundled.with_suffix(".json").is_file() else None


def ood_parameters(model: Path, pixel: float | None, frame: float | None, raise_after: int,
                   clear_after: int) -> tuple[dict[str, float | int], dict]:
    """The node's ``ood.*`` parameters (explicit values win over the manifest's calibration)
    and the manifest (``{}`` for a checkpoint). Raises ``ConfigError`` naming a threshold
    that neither gives."""
    from dudes_ros.perception import OodConfig
    from dudes_ros.runtime.manifest import load_manifest, ood_calibration

    ood = OodConfig.from_calibration(ood_calibration(model), pixel_threshold=pixel,
                                     frame_threshold=frame, raise_after=raise_after,
                                     clear_after=clear_after)
    values: dict[str, float | int] = {f"ood.{name}": getattr(ood, name) for name in (
        "pixel_threshold", "frame_threshold", "raise_after", "clear_after")}
    manifest = load_manifest(model) if model.suffix == ".onnx" else {}
    return values, manifest


def node_parameters(model: Path, ood: dict[str, float | int]) -> dict[str, object]:
    """Parameters of the demo's node: reliable input (every frame delivered), no age limit
    (every frame processed, however slow the machine), backend and device auto."""
    return {"model": str(model.resolve()), "backend": "auto", "device": "auto",
            "qos.reliability": "reliable", "qos.depth": 1, "max_input_age": 0.0, **ood}


def check_output(output: Path, overwrite: bool) -> None:
    """Refuse an existing ``output`` that is not a previous demo output, unless ``overwrite``."""
    if not output.exists() or overwrite:
        return
    try:
        previous = json.loads((output / SUMMARY_FILE).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        previous = None
    if previous != KIND:
        raise FileExistsError(f"{output} exists and is not a previous demo output; choose "
                              "another --output or pass --overwrite to replace it")


def _ros_environment() -> None:
    """Large-image transport profile (under the names this distribution's Fast DDS reads) and
    same-host discovery unless the user set their own."""
    from dudes_ros.resources import config_path
    from dudes_ros.ros.distro import use_profile

    profile = config_path("fastdds_large_images.xml")
    if profile.is_file():
        use_profile(str(profile))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def make_drive(args: argparse.Namespace) -> Drive:
    if args.bag is not None:
        return bag_drive(args.bag, args.topic, args.max_frames)
    if args.images is not None:
        return image_folder_drive(args.images, args.max_frames)
    return synthetic_drive(args.seed, args.size, args.frames, args.enter, args.leave)


def run_demo(args: argparse.Namespace, model: Path) -> dict:
    """The whole demo (see the module doc); returns the summary written to summary.json."""
    from dudes_ros.demo.camera import play
    from dudes_ros.demo.node_process import NodeProcess, node_command
    from dudes_ros.demo.report import contact_sheet_png, summarize, timeline_png

    if args.topic and args.bag is None:
        raise ValueError("--topic needs --bag")
    ood, manifest = ood_parameters(model, args.pixel_threshold, args.frame_threshold,
                                   args.raise_after, args.clear_after)
    check_output(args.output, args.overwrite)
    _ros_environment()
    parameters = node_parameters(model, ood)
    start = time.monotonic()
    with staged_output(args.output, overwrite=True) as built:
        built.mkdir()
        with NodeProcess(node_command(NAMESPACE, parameters), built / NODE_LOG) as node:
            drive = make_drive(args)  # renders while the node starts
            render_s = time.monotonic() - start
            print(f"dudes demo: playing {drive.name}: {drive.count} frames at up to "
                  f"{args.rate:g} Hz", flush=True)
            played = play(drive, node, built / BAG_DIR, namespace=NAMESPACE, rate=args.rate,
                          startup_timeout=args.startup_timeout,
                          frame_timeout=args.frame_timeout, progress=not args.no_progress)
            node_exit = node.stop()
        summary = summarize(played.records, drive.in_view, args.raise_after)
        summary.update(
            kind=KIND, model=str(model), model_name=manifest.get("model_name", model.stem),
            backend=played.diagnostics.get("backend"), node_parameters=parameters,
            node_exit_code=node_exit, node_diagnostics=played.diagnostics,
            unmatched_outputs=played.unmatched, drive={"name": drive.name, **drive.details},
            bag={"path": BAG_DIR, "storage": "mcap", "namespace": NAMESPACE},
            timings_s={"render_while_node_starts": round(render_s, 2),
                       "node_connected": round(played.connect_s, 2),
                       "stream": round(played.stream_s, 2)},
            files={"contact_sheet": CONTACT_SHEET, "timeline": TIMELINE, "bag": BAG_DIR,
                   "node_log": NODE_LOG})
        title = (f"{summary['model_name']} on {drive.name}: frame OOD score, pixel threshold "
                 f"{ood['ood.pixel_threshold']:.3g}")
        timeline_png(built / TIMELINE, summary, title)
        summary["contact_sheet_frames"] = contact_sheet_png(built / CONTACT_SHEET,
                                                            built / BAG_DIR, NAMESPACE, summary)
        summary["timings_s"]["total"] = round(time.monotonic() - start, 2)
        (built / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


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
        summary = run_demo(args, model)
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
