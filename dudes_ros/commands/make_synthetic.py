"""``dudes make-synthetic``: write synthetic street scenes (or drives) in Cityscapes layout."""

from __future__ import annotations

import argparse
import logging

from dudes_ros.argtypes import image_size, positive_int
from dudes_ros.data.anomalies import ANOMALY_KINDS
from dudes_ros.errors import UsageError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``dudes make-synthetic``."""
    parser.add_argument("root", help="dataset root (leftImg8bit/ and gtFine/ are created in it)")
    parser.add_argument("--split", default="train", help="split folder name (default: train)")
    parser.add_argument("--count", type=positive_int, default=100,
                        help="number of images, or of drives with --sequence (default: 100)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    parser.add_argument("--size", type=image_size, default=(256, 512), metavar="HxW",
                        help="image size HEIGHTxWIDTH (default: 256x512)")
    parser.add_argument("--anomaly-fraction", type=float, default=0.0,
                        help="fraction of images with an anomaly, 0..1 (default: 0)")
    parser.add_argument("--anomaly-kind", choices=ANOMALY_KINDS, default="any",
                        help="real photos, procedural shapes, or either (default: any); "
                             "exposure: shapes or the photos recipes may train on; "
                             "held-out-photo: only photos no recipe trains on")
    parser.add_argument("--city", default=None,
                        help="city folder and file prefix (default: synth, or synthseq)")
    parser.add_argument("--sequence", type=int, metavar="N",
                        help="write forward drives of N frames instead of single scenes")
    parser.add_argument("--enter", type=int, metavar="K",
                        help="with --sequence: first frame on which the anomaly is visible")
    parser.add_argument("--leave", type=int, metavar="L",
                        help="with --sequence: first frame after it has left the view")


def run(args: argparse.Namespace) -> int:
    """Render and write; returns the exit status."""
    from dudes_ros.data.synthetic import write_cityscapes_layout, write_sequence_layout

    size = args.size
    if args.sequence is None:
        if args.enter is not None or args.leave is not None:
            raise UsageError("--enter/--leave need --sequence N")
        stems = write_cityscapes_layout(args.root, args.split, args.count, args.seed, size,
                                        args.anomaly_fraction, city=args.city or "synth",
                                        anomaly_kind=args.anomaly_kind)
    else:
        n = args.sequence
        enter = n // 3 if args.enter is None else args.enter
        leave = (2 * n) // 3 if args.leave is None else args.leave
        try:
            stems = write_sequence_layout(args.root, args.split, args.count, args.seed, size, n,
                                          enter, leave, city=args.city or "synthseq",
                                          anomaly_kind=args.anomaly_kind)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    log.info("wrote %d images under %s", len(stems), args.root)
    return 0
