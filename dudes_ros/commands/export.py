"""``dudes export CHECKPOINT [-o OUT.onnx]``: the student's deploy graph as ONNX + manifest.

Success is reported only after ONNX Runtime reproduced the eager model (parity check); on a
parity failure nothing is written and the command exits 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from dudes_ros.argtypes import image_size
from dudes_ros.config import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="student checkpoint (.pt)")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="ONNX file to write (default: the checkpoint's name with .onnx); "
                        "its manifest is written beside it as .json")
    parser.add_argument("--name", default=None, help="model name in the manifest")
    parser.add_argument("--input-size", type=image_size, metavar="HxW", default=None,
                        help="network input size inside the graph, e.g. 128x256 (default: the "
                        "checkpoint's; multiples of the output stride)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")


def run(args: argparse.Namespace) -> int:
    from dudes_ros.export.onnx_export import export_onnx
    from dudes_ros.export.parity import ParityError
    from dudes_ros.model.checkpoint import CheckpointError, load_model
    from dudes_ros.runtime.manifest import sha256_file

    if args.opset < 17:
        print(f"dudes export: --opset must be >= 17, got {args.opset}", file=sys.stderr)
        return 2
    try:
        net, ckpt = load_model(args.checkpoint)
        if ckpt.get("role") != "student":
            raise CheckpointError(f"{args.checkpoint} holds a {ckpt.get('role')!r}; only a "
                                  "'student' (with the uncertainty head) can be exported")
        if args.input_size:
            net.config = dataclasses.replace(net.config, input_size=args.input_size)
    except (CheckpointError, ConfigError) as exc:
        print(f"dudes export: {exc}", file=sys.stderr)
        return 2
    output = args.output or args.checkpoint.with_suffix(".onnx")
    source = {"checkpoint": args.checkpoint.name,
              "checkpoint_sha256": sha256_file(args.checkpoint)}
    try:
        result = export_onnx(net, output, model_name=args.name, metadata=ckpt.get("metadata"),
                             source=source, opset=args.opset)
    except ParityError as exc:
        print(f"dudes export: parity check FAILED, nothing written: {exc}", file=sys.stderr)
        return 1
    for report in result.parity:
        print(f"parity {list(report.shape)}: labels agree on {report.label_agreement:.4%}, "
              f"max |du| = {report.max_uncertainty_diff:.2e}")
    print(f"wrote {result.onnx_path} (sha256 {result.onnx_sha256[:16]}…) and "
          f"{result.manifest_path}")
    return 0


