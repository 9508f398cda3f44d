"""Train one Deep Ensemble member (``train_member``; the command line is ``dudes train-teacher
--recipe R --member-index I --out D``, ``dudes_ros.commands.train_teacher``).

Members are independent runs (one per process, so they can go to different GPUs or machines);
member ``I`` uses seed ``recipe.seed + I`` and writes ``D/member-II/{last,best}.pt`` and the
effective recipe ``D/member-II/recipe.yaml``. Under
``torchrun`` the same command trains one member with DistributedDataParallel.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dudes_ros.config import ConfigError
from dudes_ros.model.student import SegmentationNet
from dudes_ros.train import distributed
from dudes_ros.train.common import check_encoder_weights, fit
from dudes_ros.train.config import Recipe
from dudes_ros.train.data import build_datasets
from dudes_ros.train.loop import StepCallback, Trainer, check_batch_size, sync_batchnorm
from dudes_ros.train.reproducibility import seed_everything


def member_dir(out_dir: str | Path, index: int) -> Path:
    return Path(out_dir) / f"member-{index:02d}"


def train_member(recipe: Recipe, index: int, out_dir: str | Path, *, device: str = "auto",
                 resume: bool = True, on_step: StepCallback | None = None) -> Path:
    """Train ensemble member ``index`` of ``recipe`` under ``out_dir``; returns its best
    checkpoint. Resumes from ``member-II/last.pt`` when present and ``resume`` is true."""
    if not 0 <= index < recipe.members:
        raise ConfigError(f"member index {index} is out of range for recipe {recipe.name!r} "
                          f"with members={recipe.members} (expected 0..{recipe.members - 1})")
    out = member_dir(out_dir, index)
    config = dataclasses.replace(recipe.model, uncertainty_head=False, encoder_weights=(
        recipe.model.encoder_weights if recipe.teacher.pretrained_encoder else None))
    check_encoder_weights(config)
    ctx = distributed.setup(device)
    try:
        check_batch_size(recipe.teacher.batch_size, ctx.world_size,
                         synced_batchnorm=sync_batchnorm(ctx))
        train_set, val_set, data_meta = build_datasets(recipe.data, Path(out_dir))
        seed = recipe.seed + index
        seed_everything(seed)
        net = SegmentationNet(config)
        pool = recipe.teacher.outlier_classes
        outlier_class = pool[index % len(pool)] if pool else None
        metadata = {"recipe": recipe.name, "member_index": index, "members": recipe.members,
                    "data": data_meta, "world_size": ctx.world_size,
                    "outlier_class": outlier_class}
        trainer = Trainer(role="member", net=net, train_config=recipe.teacher,
                          data_config=recipe.data, train_set=train_set, val_set=val_set,
                          seed=seed, out_dir=out, metadata=metadata, ctx=ctx,
                          outlier_class=outlier_class)
        return fit(trainer, recipe, resume=resume, on_step=on_step, what=f"member {index}")
    finally:
        distributed.teardown(ctx)
