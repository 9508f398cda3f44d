"""``dudes train-student --recipe R --out D [--teacher PATHS...]``: distil the DUDES student
from the ensemble (the work: ``dudes_ros.train.student.train_student``)."""

from __future__ import annotations

import argparse

from dudes_ros.commands.training_options import add_common_arguments, recipe_from_args
from dudes_ros.train.student import train_student


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--teacher", nargs="+", default=None, metavar="CHECKPOINT",
                        help="teacher member checkpoints or globs (default: "
                             "OUT/member-00/best.pt .. for the recipe's members)")


def run(args: argparse.Namespace) -> int:
    recipe = recipe_from_args(args, "student")
    best = train_student(recipe, args.teacher, args.out, device=args.device,
                         resume=not args.restart)
    print(f"student: best checkpoint {best}")
    return 0
