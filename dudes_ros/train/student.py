"""Distil the DUDES student (``train_student``; the command line is ``dudes train-student
--recipe R --out D [--teacher PATHS...]``, ``dudes_ros.commands.train_student``).

Loads the member checkpoints (default ``D/member-00/best.pt`` .. ``D/member-<M-1>/best.pt``
for the recipe's M members) into a frozen ensemble, then trains the student with
CE + λ·RMSLE(u_S, u_T), u_T computed on each augmented crop. Writes
``D/student/{last,best}.pt`` and the effective recipe ``D/student/recipe.yaml``. The student
seed is ``recipe.seed + STUDENT_SEED_OFFSET``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from dudes_ros.config import ConfigError
from dudes_ros.model.checkpoint import (
    CheckpointError,
    describe_differences,
    require_same_architecture,
)
from dudes_ros.model.ensemble import Ensemble, expand_paths, load_ensemble
from dudes_ros.model.student import SegmentationNet
from dudes_ros.train import distributed
from dudes_ros.train.common import check_encoder_weights, fit
from dudes_ros.train.config import Recipe
from dudes_ros.train.data import build_datasets
from dudes_ros.train.loop import StepCallback, Trainer, check_batch_size, sync_batchnorm
from dudes_ros.train.reproducibility import seed_everything
from dudes_ros.train.teacher import member_dir

log = logging.getLogger(__name__)
STUDENT_SEED_OFFSET = 10_000


def student_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / "student"


def train_student(recipe: Recipe, member_paths: str | Path | list | None, out_dir: str | Path,
                  *, device: str = "auto", resume: bool = True,
                  on_step: StepCallback | None = None) -> Path:
    """Train the student of ``recipe`` against the members at ``member_paths`` (paths or
    globs; None: the recipe's members under ``out_dir``); returns its best checkpoint."""
    if not recipe.model.uncertainty_head:
        raise ConfigError(f"recipe {recipe.name!r}: model.uncertainty_head is false; the "
                          "student needs it (true)")
    paths = (expand_paths(member_paths) if member_paths is not None
             else default_member_paths(recipe, out_dir))
    pretrained = recipe.student.pretrained_encoder and recipe.student.init_from_member is None
    config = dataclasses.replace(recipe.model, encoder_weights=(
        recipe.model.encoder_weights if pretrained else None))
    check_encoder_weights(config)
    ctx = distributed.setup(device)
    try:
        check_batch_size(recipe.student.batch_size, ctx.world_size,
                         synced_batchnorm=sync_batchnorm(ctx))
        teacher = load_ensemble(paths, map_location=ctx.device,
                                std_correction=recipe.student.target_std_correction)
        t_cfg, s_cfg = teacher.config, recipe.model
        differ = [f for f in ("num_classes", "mean", "std")
                  if getattr(t_cfg, f) != getattr(s_cfg, f)]
        if differ:
            raise CheckpointError(
                f"teacher member {paths[0]} and the recipe's student model differ in classes "
                f"or input normalisation: {describe_differences(t_cfg, s_cfg, differ)}")
        if len(paths) != recipe.members:
            log.warning("recipe %s expects %d members, training against %d", recipe.name,
                        recipe.members, len(paths))
        train_set, val_set, data_meta = build_datasets(recipe.data, Path(out_dir))
        seed = recipe.seed + STUDENT_SEED_OFFSET
        seed_everything(seed)
        net = SegmentationNet(config)
        if recipe.student.init_from_member is not None:
            init_from_member(net, teacher, paths, recipe.student.init_from_member)
        if recipe.student.uncertainty_prior is not None:
            net.start_uncertainty_at(recipe.student.uncertainty_prior)
        metadata = {"recipe": recipe.name, "teacher_members": [str(p) for p in paths],
                    "members": len(paths), "data": data_meta, "world_size": ctx.world_size}
        trainer = Trainer(role="student", net=net, train_config=recipe.student,
                          data_config=recipe.data, train_set=train_set, val_set=val_set,
                          seed=seed, out_dir=student_dir(out_dir), metadata=metadata, ctx=ctx,
                          teacher=teacher)
        return fit(trainer, recipe, resume=resume, on_step=on_step, what="the student")
    finally:
        distributed.teardown(ctx)


def default_member_paths(recipe: Recipe, out_dir: str | Path) -> list[Path]:
    """``out_dir/member-II/best.pt`` for the recipe's members, refusing missing ones."""
    paths = [member_dir(out_dir, i) / "best.pt" for i in range(recipe.members)]
    missing = [i for i, p in enumerate(paths) if not p.is_file()]
    if missing:
        raise CheckpointError(
            f"recipe {recipe.name!r} has {recipe.members} members, but the checkpoints of "
            f"member(s) {missing} are missing ({', '.join(str(paths[i]) for i in missing)}); "
            "train them with dudes train-teacher --member-index I, set --members, or pass "
            "the member checkpoints with --teacher")
    return paths


def init_from_member(net: SegmentationNet, teacher: Ensemble, paths: list[Path],
                     index: int) -> None:
    """Copy member ``index``'s weights into the student; only the uncertainty head stays
    freshly initialised. The stand-in for the paper's pretrained student encoder where no
    pretrained weights are available (synthetic recipe, offline)."""
    if not 0 <= index < len(teacher):
        raise ConfigError(f"student.init_from_member is {index}, but the teacher has "
                          f"{len(teacher)} members (0..{len(teacher) - 1})")
    require_same_architecture(dataclasses.replace(teacher.config, uncertainty_head=True),
                              net.config, f"teacher member {paths[index]}",
                              against="the recipe's student (student.init_from_member)")
    missing, unexpected = net.load_state_dict(teacher.members[index].state_dict(), strict=False)
    if unexpected or any(not k.startswith("uncertainty_head.") for k in missing):
        raise CheckpointError(f"{paths[index]}: weights do not fit the student "
                              f"(missing {missing}, unexpected {unexpected})")
    log.info("student starts from member %d (%s)", index, paths[index])
