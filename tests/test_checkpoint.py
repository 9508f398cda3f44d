"""Checkpoints: round trip, safe loading, atomic writes, architecture checks; the ensemble;
the student's uncertainty-head start."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from dudes_ros.config import to_dict
from dudes_ros.model.checkpoint import (
    FORMAT,
    CheckpointError,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from dudes_ros.model.config import ModelConfig
from dudes_ros.model.ensemble import Ensemble, load_ensemble
from dudes_ros.model.student import SegmentationNet
from dudes_ros.uncertainty import ensemble_statistics

TINY = ModelConfig(decoder_channels=8, input_size=(64, 128))
MEMBER = dataclasses.replace(TINY, uncertainty_head=False)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def make(config: ModelConfig, seed: int) -> SegmentationNet:
    torch.manual_seed(seed)
    return SegmentationNet(config).eval()


def test_round_trip_restores_identical_outputs(tmp_path) -> None:
    net = make(TINY, 0)
    meta = {"seed": 3, "metrics": {"val_miou": 0.5, "iou": [0.1, float("nan")]}, "data": "x"}
    path = save_checkpoint(tmp_path / "s.pt", net, role="student", metadata=meta)
    raw = torch.load(path, weights_only=True)  # the safe unpickler accepts every field
    assert raw["format"] == FORMAT and raw["role"] == "student"
    assert raw["model_config"] == to_dict(TINY)
    assert raw["labels"][0] == {"train_id": 0, "id": 7, "name": "road",
                                "color": [128, 64, 128]}
    loaded, info = load_model(path)
    assert loaded.config == TINY and not loaded.training
    assert info["metadata"]["seed"] == 3 and "state_dict" not in info
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        (a, ua), (b, ub) = net(x), loaded(x)
    assert torch.equal(a, b) and torch.equal(ua, ub)
    assert [p.name for p in tmp_path.iterdir()] == ["s.pt"]  # no temporary file left behind


def test_overwrite_is_atomic_and_failed_save_keeps_previous(tmp_path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(path, make(MEMBER, 0), role="member", metadata={"v": 1})
    with pytest.raises(CheckpointError, match=r"metadata\.bad: object"):
        save_checkpoint(path, make(MEMBER, 1), role="member", metadata={"bad": object()})
    assert read_checkpoint(path)["metadata"] == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_other_architecture_refused_naming_file_and_fields(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", make(MEMBER, 0), role="member", metadata={})
    other = dataclasses.replace(MEMBER, encoder="resnet34", decoder_channels=16)
    with pytest.raises(CheckpointError) as err:
        load_model(path, expected=other)
    assert str(err.value) == (
        f"checkpoint {path} has another architecture than the network expected here: "
        "encoder 'resnet18' instead of 'resnet34', decoder_channels 8 instead of 16")
    # Same architecture with another input size / normalisation source is fine.
    load_model(path, expected=dataclasses.replace(MEMBER, input_size=(128, 256)))


def test_not_a_checkpoint_truncated_empty_and_missing_file(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a dudes_ros checkpoint"):
        load_model(tmp_path / "other.pt")
    expected = "expected a .pt file written by dudes train-teacher or train-student"
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "junk.pt")
    assert str(err.value) == (f"checkpoint {tmp_path / 'junk.pt'} cannot be read: it is not a "
                              f"PyTorch checkpoint (no zip archive); {expected}")
    good = save_checkpoint(tmp_path / "m.pt", make(MEMBER, 0), role="member", metadata={})
    data = good.read_bytes()
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "half.pt")
    assert str(err.value).startswith(
        f"checkpoint {tmp_path / 'half.pt'} cannot be read: the file is truncated or damaged (")
    assert str(err.value).endswith(expected)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="cannot be read: the file is empty"):
        load_model(tmp_path / "empty.pt")


def test_checkpoints_are_written_0644_like_manifests(tmp_path) -> None:
    import os
    import stat

    from dudes_ros.files import atomic_write_bytes

    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "m.pt", make(MEMBER, 0), role="member", metadata={})
        atomic_write_bytes(tmp_path / "manifest.json", b"{}")
        os.umask(0o027)
        group_only = save_checkpoint(tmp_path / "g.pt", make(MEMBER, 0), role="member",
                                     metadata={})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "manifest.json").stat().st_mode) == 0o644
    assert stat.S_IMODE(group_only.stat().st_mode) == 0o640  # the umask is honoured


def test_corrupted_weights_refused(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", make(MEMBER, 0), role="member", metadata={})
    raw = torch.load(path, weights_only=True)
    raw["model_config"]["decoder_channels"] = 16
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_model(path)


def test_ensemble_matches_reference_statistics(tmp_path) -> None:
    members = [make(MEMBER, s) for s in (1, 2, 3)]
    for i, m in enumerate(members):
        save_checkpoint(tmp_path / f"member-{i:02d}" / "best.pt", m, role="member",
                        metadata={"member_index": i})
    ensemble = load_ensemble(str(tmp_path / "member-*" / "best.pt"))
    assert len(ensemble) == 3 and not any(p.requires_grad for p in ensemble.parameters())
    x = torch.randn(2, 3, 64, 128)
    with torch.no_grad():
        logits = ensemble.member_logits(x)
        reference = torch.stack([m(x)[0] for m in members])
        stats = ensemble.statistics(x)
    assert logits.shape == (3, 2, 19, 64, 128)
    assert torch.equal(logits, reference)
    expected = ensemble_statistics(reference.softmax(dim=2))
    assert torch.equal(stats.target_std, expected.target_std)
    assert torch.equal(stats.prediction, expected.prediction)
    assert float(stats.target_std.max()) <= 0.5 * math.sqrt(3 / 2)  # 3 members, Bessel


def test_ensemble_refuses_mixed_architectures_and_empty_globs(tmp_path) -> None:
    wide = dataclasses.replace(MEMBER, decoder_channels=16)
    with pytest.raises(CheckpointError) as err:
        Ensemble([make(MEMBER, 0), make(wide, 1)], names=["a.pt", "b.pt"])
    assert str(err.value) == ("b.pt has another architecture than a.pt: decoder_channels 16 "
                              "instead of 8")
    with pytest.raises(CheckpointError, match="no member checkpoints match"):
        load_ensemble(str(tmp_path / "member-*" / "best.pt"))


def test_ensemble_refuses_students_and_a_single_member(tmp_path) -> None:
    members = [save_checkpoint(tmp_path / f"m{i}.pt", make(MEMBER, i), role="member",
                               metadata={}) for i in range(2)]
    student = save_checkpoint(tmp_path / "s.pt", make(TINY, 5), role="student", metadata={})
    for paths in ([student], [members[0], student, members[1]]):
        with pytest.raises(CheckpointError) as err:
            load_ensemble(paths)
        assert str(err.value) == (f"teacher member {student} is a 'student' checkpoint; teacher "
                                  "members are 'member' checkpoints from dudes train-teacher")
    with pytest.raises(CheckpointError) as err:
        load_ensemble([members[0]])
    assert str(err.value) == ("a teacher needs at least 2 members (u_T is the std over members "
                              f"of p(predicted class)), got 1: teacher member {members[0]}")
    with pytest.raises(CheckpointError, match="s.pt is a student"):  # built without checkpoints
        Ensemble([make(MEMBER, 0), make(TINY, 1)], names=["m.pt", "s.pt"])
    assert len(load_ensemble(members)) == 2


def test_uncertainty_head_starts_at_the_prior() -> None:
    torch.manual_seed(0)
    net = SegmentationNet(TINY).eval()
    x = torch.randn(2, 3, 64, 128)
    with torch.no_grad():
        assert net(x)[1].mean().item() == pytest.approx(0.5, abs=0.1)  # PyTorch's default init
        net.start_uncertainty_at(0.065)
        u = net(x)[1]
    assert u.shape == (2, 1, 64, 128)
    assert u.min().item() > 0.05 and u.max().item() < 0.08
    assert net.uncertainty_head[0].bias.item() == pytest.approx(math.log(0.065 / 0.935))
    with pytest.raises(ValueError, match=r"must lie in \(0, 1\), got 1.0"):
        net.start_uncertainty_at(1.0)
    with pytest.raises(ValueError, match="no uncertainty head"):
        SegmentationNet(MEMBER).start_uncertainty_at(0.1)
