"""The Deep Ensemble teacher: M independently trained members evaluated on the same input."""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from dudes_ros.model.checkpoint import (
    CheckpointError,
    describe_differences,
    load_model,
    require_same_architecture,
)
from dudes_ros.model.student import SegmentationNet
from dudes_ros.uncertainty import STD_CORRECTION, EnsembleOutput, ensemble_statistics

MIN_MEMBERS = 2
"""u_T is a standard deviation over members: it needs at least two."""


class Ensemble(nn.Module):
    """Teacher ensemble over ``SegmentationNet`` members of one architecture.

    Inputs are normalised images ``float [B, 3, H, W]`` (all members share one normalisation,
    checked at construction). Members are evaluated one after another, so memory grows with
    one member's activations, not M. ``names`` (e.g. the checkpoint paths) label the members
    in error messages; ``std_correction`` is the correction of the std over members in u_T
    (``dudes_ros.uncertainty``).
    """

    def __init__(self, members: list[SegmentationNet], names: list[str] | None = None,
                 std_correction: int = STD_CORRECTION) -> None:
        super().__init__()
        names = names or [f"ensemble member {i}" for i in range(len(members))]
        if len(names) != len(members):
            raise ValueError(f"{len(names)} names for {len(members)} members")
        if len(members) < MIN_MEMBERS:
            raise CheckpointError(
                f"a teacher needs at least {MIN_MEMBERS} members (u_T is the std over members "
                f"of p(predicted class)), got {len(members)}: {', '.join(names) or 'none'}")
        for name, m in zip(names, members, strict=True):
            if m.uncertainty_head is not None:
                raise CheckpointError(f"{name} is a student (it has an uncertainty head); "
                                      "teacher members come from dudes train-teacher")
        first = members[0].config
        for name, m in zip(names[1:], members[1:], strict=True):
            require_same_architecture(m.config, first, name, against=names[0])
            if (m.config.mean, m.config.std) != (first.mean, first.std):
                raise CheckpointError(
                    f"{name} normalises inputs differently from {names[0]}: "
                    f"{describe_differences(m.config, first, ['mean', 'std'])}")
        self.members = nn.ModuleList(members)
        self.names = list(names)
        self.std_correction = std_correction

    @property
    def config(self):
        return self.members[0].config

    def __len__(self) -> int:
        return len(self.members)

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Member logits ``[M, B, C, H, W]`` for ``x [B, 3, H, W]``."""
        return torch.stack([m(x)[0] for m in self.members], dim=0)

    def statistics(self, x: torch.Tensor) -> EnsembleOutput:
        """Ensemble statistics (mean probability, prediction, u_T, entropy, MI) for ``x``."""
        logits = self.member_logits(x).float()
        return ensemble_statistics(logits.softmax(dim=2), self.std_correction)

    def forward(self, x: torch.Tensor) -> EnsembleOutput:
        return self.statistics(x)


def expand_paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Checkpoint paths from a path, a glob pattern, or a list of either (sorted per glob)."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    out: list[Path] = []
    for item in items:
        text = str(item)
        if glob.has_magic(text):
            matches = sorted(glob.glob(text))
            if not matches:
                raise CheckpointError(f"no member checkpoints match {text!r}")
            out.extend(Path(m) for m in matches)
        else:
            out.append(Path(text))
    if not out:
        raise CheckpointError("no member checkpoints given")
    return out


def load_ensemble(paths: str | Path | Iterable[str | Path],
                  map_location: str | torch.device = "cpu",
                  std_correction: int = STD_CORRECTION) -> Ensemble:
    """An ``Ensemble`` (eval mode, gradients off) from member checkpoint paths or globs.

    Refuses student checkpoints, fewer than two members and members of different
    architectures, naming the file."""
    expanded = expand_paths(paths)
    members = []
    for path in expanded:
        model, ckpt = load_model(path, map_location)
        if ckpt["role"] != "member":
            raise CheckpointError(f"teacher member {path} is a {ckpt['role']!r} checkpoint; "
                                  "teacher members are 'member' checkpoints from dudes "
                                  "train-teacher")
        members.append(model)
    names = [f"teacher member {p}" for p in expanded]
    ensemble = Ensemble(members, names, std_correction).eval()
    ensemble.requires_grad_(False)
    return ensemble
