"""The options ``dudes train-teacher`` and ``dudes train-student`` share: the recipe, the output
folder and the recipe overrides, turned into the effective ``Recipe``."""

from __future__ import annotations

import argparse
import dataclasses

from dudes_ros.argtypes import image_size, positive_int
from dudes_ros.config import ConfigError
from dudes_ros.train.config import Recipe
from dudes_ros.train.recipes import load_recipe


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", required=True,
                        help="bundled recipe name (cityscapes, synthetic) or a YAML path")
    parser.add_argument("--out", required=True, help="output folder for the whole ensemble "
                        "and student (member-XX/ and student/ are created inside)")
    parser.add_argument("--seed", type=int, default=None, help="base seed (default: recipe's)")
    parser.add_argument("--data-root", default=None,
                        help="Cityscapes-layout folder, e.g. from dudes make-synthetic "
                             "(overrides the recipe's data.root)")
    quick = parser.add_argument_group(
        "recipe overrides (the effective recipe is saved as recipe.yaml beside the "
        "checkpoints)")
    quick.add_argument("--members", type=positive_int, default=None,
                       help="number of teacher members, >= 2 (recipe: members)")
    quick.add_argument("--image-size", type=image_size, default=None, metavar="HxW",
                       help="network input size, e.g. 128x256 (recipe: model.input_size)")
    quick.add_argument("--crop-size", type=image_size, default=None, metavar="HxW",
                       help="training crop size (recipe: data.crop_size)")
    quick.add_argument("--epochs", type=positive_int, default=None,
                       help="epochs of this schedule (recipe: teacher.epochs or "
                            "student.epochs)")
    quick.add_argument("--batch-size", type=positive_int, default=None,
                       help="global batch size of this schedule")
    quick.add_argument("--max-steps", type=positive_int, default=None,
                       help="stop after this many iterations (poly LR ends there)")
    quick.add_argument("--encoder-weights", default=None, metavar="imagenet|FILE|none",
                       help="pretrained encoder weights (recipe: model.encoder_weights): "
                            "imagenet (downloaded once from the Hugging Face Hub), a local "
                            ".pth/.pt/.safetensors state dict such as torchvision's "
                            "resnet18-f37072fd.pth, or none for random init")
    parser.add_argument("--workers", type=int, default=None, help="data loader workers")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--restart", action="store_true",
                        help="ignore an existing last.pt instead of resuming from it")


def recipe_from_args(args: argparse.Namespace, schedule: str) -> Recipe:
    """The recipe with command-line overrides applied; a value the recipe refuses is
    reported with the options that set it."""
    recipe = load_recipe(args.recipe)
    given = {flag: value for flag, value in (
        ("--data-root", args.data_root), ("--workers", args.workers),
        ("--members", args.members), ("--image-size", args.image_size),
        ("--crop-size", args.crop_size), ("--epochs", args.epochs),
        ("--batch-size", args.batch_size), ("--max-steps", args.max_steps),
        ("--seed", args.seed), ("--encoder-weights", args.encoder_weights))
        if value is not None}
    if not given:
        return recipe
    data = dataclasses.replace(recipe.data, **{key: given[flag] for flag, key in (
        ("--data-root", "root"), ("--workers", "num_workers"), ("--crop-size", "crop_size"))
        if flag in given})
    train = dataclasses.replace(getattr(recipe, schedule), **{key: given[flag] for flag, key in (
        ("--epochs", "epochs"), ("--batch-size", "batch_size"), ("--max-steps", "max_steps"))
        if flag in given})
    changes = {key: given[flag] for flag, key in (("--members", "members"), ("--seed", "seed"))
               if flag in given}
    try:
        model = {key: given[flag] for flag, key in (("--image-size", "input_size"),
                                                    ("--encoder-weights", "encoder_weights"))
                 if flag in given}
        if model.get("encoder_weights", "").lower() == "none":
            model["encoder_weights"] = None
        if model:
            changes["model"] = dataclasses.replace(recipe.model, **model)
        return dataclasses.replace(recipe, data=data, **{schedule: train}, **changes)
    except ConfigError as exc:
        shown = " ".join(f"{flag} {_shown(value)}" for flag, value in given.items())
        raise ConfigError(f"recipe {args.recipe} with {shown}: {exc}") from exc


def _shown(value: object) -> str:
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    return str(value)
