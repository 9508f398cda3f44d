"""Pieces shared by ``train_member`` (teacher.py) and ``train_student`` (student.py): the
encoder-weights check, the effective recipe beside the checkpoints, the fit with resume."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from dudes_ros.config import to_dict
from dudes_ros.files import atomic_write_bytes
from dudes_ros.model.config import ModelConfig
from dudes_ros.train.config import Recipe
from dudes_ros.train.loop import StepCallback, Trainer

RECIPE_FILE = "recipe.yaml"
"""The effective recipe of a run, written beside its checkpoints."""


def check_encoder_weights(config: ModelConfig) -> None:
    """Fetch (or read) ``config``'s pretrained encoder weights and load them into a spare
    encoder before any data is prepared, so a failed download or a file that does not fit
    ends the command at once, in one line (``EncoderWeightsError``); downloads land in the
    Hugging Face cache, which the network's construction reads again."""
    if config.encoder_weights is None:
        return
    import segmentation_models_pytorch as smp

    from dudes_ros.model.student import load_encoder_weights

    load_encoder_weights(smp.encoders.get_encoder(config.encoder, weights=None),
                         config.encoder, config.encoder_weights)


def write_recipe(recipe: Recipe, folder: Path) -> Path:
    """Save ``recipe`` as ``folder/recipe.yaml`` (a valid ``--recipe`` file)."""
    path = folder / RECIPE_FILE
    atomic_write_bytes(path, yaml.safe_dump(to_dict(recipe), sort_keys=False).encode())
    return path


def fit(trainer: Trainer, recipe: Recipe, *, resume: bool, on_step: StepCallback | None,
        what: str) -> Path:
    """Resume ``trainer`` from its last checkpoint when asked and present, save the effective
    recipe beside its checkpoints, train it to the end, and return its best checkpoint."""
    if resume and trainer.resume():
        logging.getLogger(__name__).info("resuming %s from %s at step %d", what,
                                         trainer.last_path, trainer.state.step)
    if trainer.ctx.is_main:
        write_recipe(recipe, trainer.out_dir)
    return trainer.fit(on_step).best
