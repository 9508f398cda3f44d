"""Pieces shared by the ``train-teacher`` and ``train-student`` commands."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from dudes_ros.train.config import Recipe
from dudes_ros.train.loop import StepCallback, Trainer
from dudes_ros.train.recipes import load_recipe


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", required=True,
                        help="bundled recipe name (cityscapes, synthetic) or a YAML path")
    parser.add_argument("--out", required=True, help="output folder for the whole ensemble "
                        "and student (member-XX/ and student/ are created inside)")
    parser.add_argument("--seed", type=int, default=None, help="base seed (default: recipe's)")
    parser.add_argument("--data-root", default=None,
                        help="Cityscapes-layout folder (overrides the recipe's data.root)")
    parser.add_argument("--epochs", type=int, default=None, help="override the epochs")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="override the global batch size")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="stop after this many iterations (poly LR ends there)")
    parser.add_argument("--workers", type=int, default=None, help="data loader workers")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--restart", action="store_true",
                        help="ignore an existing last.pt instead of resuming from it")


def recipe_from_args(args: argparse.Namespace, schedule: str) -> Recipe:
    """The recipe with command-line overrides applied to ``data`` and ``schedule``."""
    recipe = load_recipe(args.recipe)
    data = recipe.data
    if args.data_root is not None:
        data = dataclasses.replace(data, root=args.data_root)
    if args.workers is not None:
        data = dataclasses.replace(data, num_workers=args.workers)
    overrides = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size),
                                   ("max_steps", args.max_steps)) if v is not None}
    train = dataclasses.replace(getattr(recipe, schedule), **overrides)
    changes = {"data": data, schedule: train}
    if args.seed is not None:
        changes["seed"] = args.seed
    return dataclasses.replace(recipe, **changes)


def fit(trainer: Trainer, *, resume: bool, on_step: StepCallback | None, what: str) -> Path:
    """Resume ``trainer`` from its last checkpoint when asked and present, train it to the end,
    and return its best checkpoint."""
    if resume and trainer.resume():
        logging.getLogger(__name__).info("resuming %s from %s at step %d", what,
                                         trainer.last_path, trainer.state.step)
    return trainer.fit(on_step).best
