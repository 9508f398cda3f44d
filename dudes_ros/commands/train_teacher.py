"""``dudes train-teacher --recipe R --member-index I --out D``: train one Deep Ensemble member
(the work: ``dudes_ros.train.teacher.train_member``; under ``torchrun`` with
DistributedDataParallel)."""

from __future__ import annotations

import argparse

from dudes_ros.commands.training_options import add_common_arguments, recipe_from_args
from dudes_ros.train.teacher import train_member


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--member-index", type=int, required=True,
                        help="which member to train (0..members-1); seed = base seed + index")


def run(args: argparse.Namespace) -> int:
    recipe = recipe_from_args(args, "teacher")
    best = train_member(recipe, args.member_index, args.out, device=args.device,
                        resume=not args.restart)
    print(f"member {args.member_index}: best checkpoint {best}")
    return 0
