"""``dudes demo``: the main job on the bundled model (synthetic drive -> node -> outputs)."""

from __future__ import annotations

import argparse
import sys

PLAN = """dudes demo will:
  1. generate a synthetic drive in which a real-photo anomaly enters the road and later leaves;
  2. start the dudes node (real rclpy, backend auto -> ONNX Runtime on CPU) in its own process;
  3. publish the drive as a camera from another process and record inputs and outputs to MCAP;
  4. write demo_output/ with a contact sheet and an OOD timeline PNG, and print a summary.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="demo_output", help="output folder")


def run(args: argparse.Namespace) -> int:
    print(PLAN, end="")
    if not _bundled_model_present():
        print("dudes demo: not available yet: no bundled student in engines/ "
              "(dudes_student.onnx + .json); nothing was run.", file=sys.stderr)
        return 2
    print("dudes demo: the demo pipeline is not implemented yet; nothing was run.",
          file=sys.stderr)
    return 2


def _bundled_model_present() -> bool:
    from dudes_ros.resources import bundled_model

    model = bundled_model()
    return model.is_file() and model.with_suffix(".json").is_file()
