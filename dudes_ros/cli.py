"""The ``dudes`` command: one entry point, one subcommand per job.

Subcommands live in their own modules and are imported only when run, so ``dudes --help``
stays fast and a missing optional dependency (torch, say) only affects the commands that need
it. Each module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("dudes_ros.doctor", "print ROS, RMW, torch, CUDA, ONNX Runtime, TensorRT facts"),
    "make-synthetic": ("dudes_ros.data.synthetic_cli",
                       "write synthetic street scenes or drives in Cityscapes layout"),
    "train-teacher": ("dudes_ros.train.teacher", "train one Deep Ensemble member (torchrun ok)"),
    "train-student": ("dudes_ros.train.student", "distil the DUDES student from the ensemble"),
    "process-bag": ("dudes_ros.bag.process",
                    "run the student over a bag's image topics; write an output bag + report"),
    "replay": ("dudes_ros.bag.replay", "publish a bag into the ROS graph at the recorded rate"),
    "export": ("dudes_ros.export.export_command",
               "student checkpoint -> deploy-graph ONNX + manifest, parity-checked"),
    "build-engine": ("dudes_ros.export.build_engine_command",
                     "compile the ONNX to a cached TensorRT engine ahead of time"),
    "demo": ("dudes_ros.demo.command",
             "run the node on a synthetic drive with an anomaly; write PNGs"),
    "evaluate": ("dudes_ros.evaluate.report",
                 "score student, teacher and one member; metrics JSON + Markdown report"),
    "calibrate": ("dudes_ros.evaluate.calibrate",
                  "set the pixel and frame OOD thresholds on in-domain data; update manifest"),
}


def image_size(text: str) -> tuple[int, int]:
    """argparse type for ``HEIGHTxWIDTH`` (e.g. ``256x512``), both sides >= 16 pixels."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size {text!r}: expected HEIGHTxWIDTH, e.g. 256x512") from None
    if h < 16 or w < 16:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected both sides >= 16 pixels")
    return h, w


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dudes",
        description="DUDES segmentation with distilled uncertainty: train, evaluate, export, "
        "compile, run on bags, demo.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False).set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    # Parse the command name first, then let its module add its own arguments.
    known, _ = parser.parse_known_args(argv)
    module = importlib.import_module(known._module)
    sub_parser = argparse.ArgumentParser(prog=f"dudes {known.command}",
                                         description=SUBCOMMANDS[known.command][1])
    module.add_arguments(sub_parser)
    args = sub_parser.parse_args(argv[argv.index(known.command) + 1:])
    logging.basicConfig(level=logging.DEBUG if known.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"dudes {known.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
