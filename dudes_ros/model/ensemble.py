"""The Deep Ensemble teacher: M independently trained members evaluated on the same input."""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from dudes_ros.config import to_dict
from dudes_ros.model.checkpoint import CheckpointError, load_model, require_same_architecture
from dudes_ros.model.student import SegmentationNet
from dudes_ros.uncertainty import EnsembleOutput, ensemble_statistics


class Ensemble(nn.Module):
    """Teacher ensemble over ``SegmentationNet`` members of one architecture.

    Inputs are normalised images ``float [B, 3, H, W]`` (all members share one normalisation,
    checked at construction). Members are evaluated one after another, so memory grows with
    one member's activations, not M.
    """

    def __init__(self, members: list[SegmentationNet]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        first = members[0].config
        for i, m in enumerate(members[1:], start=1):
            require_same_architecture(m.config, first, f"ensemble member {i}")
            if (m.config.mean, m.config.std) != (first.mean, first.std):
                raise CheckpointError(
                    f"ensemble member {i} normalises inputs differently:\n"
                    f"  member {i}: {to_dict(m.config)}\n  member 0: {to_dict(first)}")
        self.members = nn.ModuleList(members)

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
        return ensemble_statistics(logits.softmax(dim=2))

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
                  map_location: str | torch.device = "cpu") -> Ensemble:
    """An ``Ensemble`` (eval mode, gradients off) from member checkpoint paths or globs."""
    members = []
    for path in expand_paths(paths):
        model, _ = load_model(path, map_location)
        members.append(model)
    ensemble = Ensemble(members).eval()
    ensemble.requires_grad_(False)
    return ensemble
