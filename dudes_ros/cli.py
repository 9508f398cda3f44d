"""The ``dudes`` command: one entry point, one subcommand per job.

Subcommands live in their own modules, ``dudes_ros.commands.<name>``, imported only when run,
so ``dudes --help`` stays fast and a missing optional dependency (torch, say) only affects the
commands that need it. Each module exposes ``add_arguments(parser)`` and ``run(args) -> int``.

Errors the user can fix (``dudes_ros.errors.DudesError``: configuration, data, checkpoints,
manifests, options) end the command with one line ``dudes <command>: <message>`` on stderr and
exit status 2; ``-v``/``--verbose`` (before or after the command name) adds the traceback.
Anything else is a bug and keeps Python's traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from dudes_ros.errors import DudesError

# name -> (module, one-line help); every module is dudes_ros.commands.<name with "_" for "-">
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("dudes_ros.commands.doctor",
               "print ROS, RMW, torch, CUDA, ONNX Runtime, TensorRT facts"),
    "make-synthetic": ("dudes_ros.commands.make_synthetic",
                       "write synthetic street scenes or drives in Cityscapes layout"),
    "train-teacher": ("dudes_ros.commands.train_teacher",
                      "train one Deep Ensemble member (torchrun ok)"),
    "train-student": ("dudes_ros.commands.train_student",
                      "distil the DUDES student from the ensemble"),
    "process-bag": ("dudes_ros.commands.process_bag",
                    "run the student over a bag's image topics; write an output bag + report"),
    "replay": ("dudes_ros.commands.replay",
               "publish a bag into the ROS graph at the recorded rate"),
    "export": ("dudes_ros.commands.export",
               "student checkpoint -> deploy-graph ONNX + manifest, parity-checked"),
    "build-engine": ("dudes_ros.commands.build_engine",
                     "compile the ONNX to a cached TensorRT engine ahead of time"),
    "make-variant": ("dudes_ros.commands.make_variant",
                     "make the fp16 or int8 (Q/DQ) variant of the ONNX on the CPU"),
    "demo": ("dudes_ros.commands.demo",
             "run the node on a synthetic drive with an anomaly; write PNGs"),
    "evaluate": ("dudes_ros.commands.evaluate",
                 "score student, teacher and one member; metrics JSON + Markdown report"),
    "calibrate": ("dudes_ros.commands.calibrate",
                  "set the pixel and frame OOD thresholds on in-domain data; update manifest"),
}


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
    sub_parser.add_argument("-v", "--verbose", action="store_true",
                            help="debug logging, and the traceback of an error")
    module.add_arguments(sub_parser)
    args = sub_parser.parse_args(argv[argv.index(known.command) + 1:])
    verbose = known.verbose or args.verbose
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"dudes {known.command}: interrupted", file=sys.stderr)
        return 130
    except DudesError as exc:
        if verbose:
            traceback.print_exc()
        print(f"dudes {known.command}: {one_line(exc)}", file=sys.stderr)
        return 2


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (a multi-line message's lines joined by "; ")."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
