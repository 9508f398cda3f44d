"""Tiny end-to-end DUDES training: members, student, checkpoints, exact resume, DDP, CLI."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from dudes_ros.cli import main as cli_main
from dudes_ros.config import ConfigError
from dudes_ros.model.checkpoint import CheckpointError, load_model, read_checkpoint
from dudes_ros.model.config import ModelConfig
from dudes_ros.train.config import DataConfig, Recipe, SyntheticDataConfig, TrainConfig
from dudes_ros.train.data import STAMP, build_datasets
from dudes_ros.train.recipes import load_recipe
from dudes_ros.train.student import train_student
from dudes_ros.train.teacher import train_member

SIZE = (64, 128)
SYNTHETIC = SyntheticDataConfig(train_count=16, val_count=4, size=SIZE, seed=5)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 train + 4 val synthetic street scenes at 64x128, rendered once per module."""
    root = tmp_path_factory.mktemp("street") / "synthetic"
    build_datasets(DataConfig(source="synthetic", root=str(root), crop_size=SIZE,
                              synthetic=SYNTHETIC), root.parent)
    return root


def tiny_recipe(root: Path, **schedule) -> Recipe:
    train = TrainConfig(**{"epochs": 3, "batch_size": 4, "lr": 0.01, **schedule})
    return Recipe(
        name="tiny", members=2, seed=7,
        model=ModelConfig(decoder_channels=16, input_size=SIZE),
        data=DataConfig(source="synthetic", root=str(root), crop_size=SIZE, num_workers=0,
                        val_batch_size=4, synthetic=SYNTHETIC),
        teacher=train, student=train)


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_members_and_student_train_and_round_trip(data_root: Path, tmp_path: Path) -> None:
    recipe = tiny_recipe(data_root)
    member_losses: list[list[float]] = [[], []]
    for i in range(2):
        best = train_member(recipe, i, tmp_path, device="cpu",
                            on_step=lambda s, loss, i=i: member_losses[i].append(loss))
        assert best == tmp_path / f"member-{i:02d}" / "best.pt"
        model, info = load_model(best)
        assert model.uncertainty_head is None and info["role"] == "member"
        meta = info["metadata"]
        assert (meta["member_index"], meta["seed"], meta["recipe"]) == (i, 7 + i, "tiny")
        assert meta["data"]["train_images"] == 16
        assert 0.0 <= meta["best_val_miou"] <= 1.0
        last = read_checkpoint(tmp_path / f"member-{i:02d}" / "last.pt")
        assert last["metadata"]["step"] == 12 and len(last["metadata"]["history"]) == 3
    for losses in member_losses:
        assert len(losses) == 12
        assert mean(losses[-3:]) < 0.8 * mean(losses[:3])
    # Different seeds -> different members.
    a, b = (load_model(tmp_path / f"member-{i:02d}" / "best.pt")[0] for i in range(2))
    assert not torch.equal(a.segmentation_head[0].weight, b.segmentation_head[0].weight)

    student_losses: list[float] = []
    best = train_student(recipe, None, tmp_path, device="cpu",
                         on_step=lambda s, loss: student_losses.append(loss))
    assert mean(student_losses[-3:]) < 0.8 * mean(student_losses[:3])
    student, info = load_model(best)
    meta = info["metadata"]
    assert info["role"] == "student" and meta["members"] == 2
    assert meta["teacher_members"] == [str(tmp_path / f"member-{i:02d}" / "best.pt")
                                      for i in range(2)]
    metrics = meta["metrics"]
    assert {"val_miou", "teacher_val_miou", "u_pearson"} <= set(metrics)
    assert -1.0 <= metrics["u_pearson"] <= 1.0
    with torch.no_grad():
        logits, u = student(torch.randn(1, 3, *SIZE))
    assert logits.shape == (1, 19, *SIZE) and u.shape == (1, 1, *SIZE)
    assert 0.0 <= float(u.min()) and float(u.max()) <= 1.0


def test_student_starts_from_a_member(data_root: Path, tmp_path: Path) -> None:
    recipe = tiny_recipe(data_root, max_steps=1)
    for i in range(2):
        train_member(recipe, i, tmp_path, device="cpu")
    member = load_model(tmp_path / "member-01" / "best.pt")[0]
    warm = dataclasses.replace(recipe, student=dataclasses.replace(
        recipe.student, init_from_member=1, uncertainty_prior=0.065,
        lr=1e-12))  # a step too small to move weights
    members = str(tmp_path / "member-*" / "best.pt")
    student = load_model(train_student(warm, members, tmp_path / "warm", device="cpu"))[0]
    weights = dict(student.named_parameters())
    for name, tensor in member.named_parameters():  # BN statistics move even at lr ~ 0
        torch.testing.assert_close(weights[name], tensor, atol=1e-6, rtol=0, msg=name)
    assert any(name.startswith("uncertainty_head.") for name in weights)
    # the fresh head starts at the recipe's prior: bias logit(0.065)
    assert weights["uncertainty_head.0.bias"].item() == pytest.approx(math.log(0.065 / 0.935))
    bad = dataclasses.replace(recipe, student=dataclasses.replace(recipe.student,
                                                                  init_from_member=2))
    with pytest.raises(ValueError, match="init_from_member is 2, but the teacher has 2"):
        train_student(bad, members, tmp_path / "bad", device="cpu")


def test_student_target_follows_the_recipes_std_correction(data_root: Path, tmp_path: Path,
                                                           monkeypatch) -> None:
    from dudes_ros.train import loop

    real_loss, seen = loop.distillation_loss, []

    def recording_loss(model, x, labels, teacher, *rest):
        seen.append(teacher.statistics(x).target_std)
        return real_loss(model, x, labels, teacher, *rest)

    recipe = tiny_recipe(data_root, max_steps=1)
    for i in range(2):
        train_member(recipe, i, tmp_path, device="cpu")
    monkeypatch.setattr(loop, "distillation_loss", recording_loss)
    members = [tmp_path / f"member-{i:02d}" / "best.pt" for i in range(2)]
    train_student(recipe, members, tmp_path / "bessel", device="cpu")
    population = dataclasses.replace(recipe, student=dataclasses.replace(
        recipe.student, target_std_correction=0))
    train_student(population, members, tmp_path / "population", device="cpu")
    # same seed, same first crop: with two members Bessel's u_T is sqrt(2) times the other
    bessel, pop = seen
    torch.testing.assert_close(bessel, pop * math.sqrt(2), rtol=1e-5, atol=1e-7)
    assert float(bessel.max()) > 0


def test_members_take_their_outlier_class_in_turn(tmp_path: Path, monkeypatch) -> None:
    from dudes_ros.train import loop

    real_loss, weights_seen = loop.distillation_loss, []

    def recording_loss(*args):
        weights_seen.append(args[5].tolist())  # class_weights
        return real_loss(*args)

    monkeypatch.setattr(loop, "distillation_loss", recording_loss)
    root = tmp_path / "exposed"
    synthetic = dataclasses.replace(SYNTHETIC, train_count=4, val_count=2, anomaly_fraction=1.0,
                                    anomaly_kind="exposure")
    tiny = tiny_recipe(root, max_steps=1)
    recipe = dataclasses.replace(
        tiny, members=3,
        teacher=dataclasses.replace(tiny.teacher, outlier_classes=(12, 16), outlier_weight=9.0),
        data=DataConfig(source="synthetic", root=str(root), crop_size=SIZE, num_workers=0,
                        val_batch_size=2, synthetic=synthetic))
    for i, expected in enumerate((12, 16, 12)):
        meta = read_checkpoint(train_member(recipe, i, tmp_path, device="cpu"))["metadata"]
        assert meta["outlier_class"] == expected
        assert meta["train_config"]["outlier_weight"] == 9.0
        # the member's CE weighs its own outlier class 9x and every other class 1x
        assert weights_seen[-1] == [9.0 if c == expected else 1.0 for c in range(19)]


class Interrupt(Exception):
    pass


def test_resume_after_interruption_is_bitwise_identical(data_root: Path,
                                                        tmp_path: Path) -> None:
    recipe = tiny_recipe(data_root, max_steps=10, checkpoint_every=3)
    straight: list[tuple[int, float]] = []
    train_member(recipe, 0, tmp_path / "straight", device="cpu",
                 on_step=lambda s, loss: straight.append((s, loss)))

    def stop_at_7(step: int, loss: float) -> None:
        if step == 7:
            raise Interrupt
    with pytest.raises(Interrupt):
        train_member(recipe, 0, tmp_path / "resumed", device="cpu", on_step=stop_at_7)
    ckpt = read_checkpoint(tmp_path / "resumed" / "member-00" / "last.pt")
    state = ckpt["training_state"]
    assert (state["step"], state["epoch"], state["epoch_step"]) == (6, 1, 2)
    lrs = [g["lr"] for g in state["optimizer"]["param_groups"]]
    assert lrs == pytest.approx([0.01 * 0.4 ** 0.9, 0.1 * 0.4 ** 0.9])  # poly, 10x heads

    resumed: list[tuple[int, float]] = []
    train_member(recipe, 0, tmp_path / "resumed", device="cpu",
                 on_step=lambda s, loss: resumed.append((s, loss)))
    assert resumed == straight[6:]  # steps 7..10 with bitwise-equal losses
    a = read_checkpoint(tmp_path / "straight" / "member-00" / "last.pt")
    b = read_checkpoint(tmp_path / "resumed" / "member-00" / "last.pt")
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert a["metadata"]["history"] == b["metadata"]["history"]


def test_resume_with_another_architecture_is_refused(data_root: Path, tmp_path: Path) -> None:
    recipe = tiny_recipe(data_root, max_steps=1)
    train_member(recipe, 0, tmp_path, device="cpu")
    wider = dataclasses.replace(recipe, model=dataclasses.replace(recipe.model,
                                                                  decoder_channels=32))
    with pytest.raises(CheckpointError) as err:
        train_member(wider, 0, tmp_path, device="cpu")
    last = tmp_path / "member-00" / "last.pt"
    assert str(err.value) == (
        f"resume checkpoint {last} has another architecture than this run's recipe (restart "
        "with --restart or use another --out): decoder_channels 16 instead of 32")
    with pytest.raises(ValueError, match="member index 2 is out of range"):
        train_member(recipe, 2, tmp_path, device="cpu")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, port: int, root: str, out: str) -> None:
    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    losses: list[float] = []
    train_member(tiny_recipe(Path(root), max_steps=3), 0, out, device="cpu",
                 on_step=lambda s, loss: losses.append(loss))
    Path(out, f"rank{rank}.json").write_text(json.dumps(losses))


def test_two_process_ddp_gloo(data_root: Path, tmp_path: Path) -> None:
    mp.spawn(_ddp_worker, args=(_free_port(), str(data_root), str(tmp_path)), nprocs=2)
    losses = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert len(losses[0]) == len(losses[1]) == 3
    assert losses[0] != losses[1]  # each rank trained on its own shard
    ckpt = read_checkpoint(tmp_path / "member-00" / "last.pt")
    meta = ckpt["metadata"]
    assert meta["world_size"] == 2 and meta["step"] == 3 and meta["total_steps"] == 3
    # Global batch 4 over 2 processes: 16 images / 2 ranks / 2 per rank = 4 steps per epoch.
    assert ckpt["training_state"]["epoch_step"] == 0 and ckpt["training_state"]["epoch"] == 1
    files = sorted(p.name for p in (tmp_path / "member-00").iterdir())
    assert files == ["best.pt", "last.pt", "recipe.yaml"]


def test_cli_trains_with_overrides_and_saves_the_effective_recipe(
        data_root: Path, tmp_path: Path, capsys) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(json.dumps({
        "name": "tiny-cli", "members": 5,
        "model": {"decoder_channels": 8, "input_size": [128, 256]},
        "data": {"crop_size": [96, 96], "num_workers": 0, "val_batch_size": 4},
        "teacher": {"batch_size": 8, "lr": 0.01},
        "student": {"batch_size": 8, "lr": 0.01, "validate_teacher": False}}))
    quick = ["--members", "2", "--image-size", "64x128", "--crop-size", "32x64",
             "--epochs", "1", "--batch-size", "4", "--max-steps", "2"]
    run = tmp_path / "run"
    for i in (0, 1):
        assert cli_main(["train-teacher", "--recipe", str(recipe), "--member-index", str(i),
                         "--out", str(run), "--data-root", str(data_root), "--device", "cpu",
                         "--seed", "3", *quick]) == 0
        assert f"member {i}: best checkpoint" in capsys.readouterr().out
    meta = read_checkpoint(run / "member-01" / "last.pt")["metadata"]
    assert (meta["step"], meta["seed"], meta["recipe"], meta["members"]) == (2, 4, "tiny-cli", 2)
    assert meta["train_config"]["batch_size"] == 4 and meta["data_config"]["crop_size"] == [32, 64]
    saved = load_recipe(run / "member-01" / "recipe.yaml")
    assert saved == dataclasses.replace(
        load_recipe(recipe), members=2, seed=3,
        model=dataclasses.replace(load_recipe(recipe).model, input_size=(64, 128)),
        data=dataclasses.replace(load_recipe(recipe).data, root=str(data_root),
                                 crop_size=(32, 64)),
        teacher=TrainConfig(epochs=1, batch_size=4, lr=0.01, max_steps=2))
    # the student takes member-00 and member-01 of --members 2 (not member-*)
    assert cli_main(["train-student", "--recipe", str(recipe), "--out", str(run),
                     "--data-root", str(data_root), "--device", "cpu", *quick]) == 0
    student = read_checkpoint(run / "student" / "best.pt")
    assert student["metadata"]["teacher_members"] == [
        str(run / f"member-{i:02d}" / "best.pt") for i in (0, 1)]
    assert load_model(run / "student" / "best.pt")[0].config.input_size == (64, 128)
    assert load_recipe(run / "student" / "recipe.yaml").student.batch_size == 4
    # best.pt carries weights and metadata only; resuming reads last.pt
    last = read_checkpoint(run / "student" / "last.pt")
    assert student["training_state"] is None and last["training_state"]["step"] == 2
    assert (run / "student" / "best.pt").stat().st_size < 0.6 * (
        run / "student" / "last.pt").stat().st_size


def test_recipe_overrides_are_checked_naming_the_options(tmp_path: Path) -> None:
    import argparse

    from dudes_ros.commands.training_options import add_common_arguments, recipe_from_args

    parser = argparse.ArgumentParser()
    add_common_arguments(parser)

    def recipe(*flags: str) -> Recipe:
        return recipe_from_args(parser.parse_args(["--recipe", "synthetic", "--out", "x",
                                                   *flags]), "teacher")

    quick = recipe("--members", "3", "--image-size", "64x128", "--crop-size", "32x64",
                   "--epochs", "2", "--batch-size", "2")
    assert (quick.members, quick.model.input_size, quick.data.crop_size) == (3, (64, 128),
                                                                              (32, 64))
    assert (quick.teacher.epochs, quick.teacher.batch_size) == (2, 2)
    assert quick.student == load_recipe("synthetic").student  # only the teacher's schedule
    with pytest.raises(ConfigError) as err:
        recipe("--members", "1")
    assert str(err.value) == ("recipe synthetic with --members 1: members: invalid value 1; "
                              "expected >= 2 (u_T is the std over members of p(predicted "
                              "class))")
    with pytest.raises(ConfigError, match=r"with --image-size 40x80: model.input_size: invalid "
                       r"value \(40, 80\); expected positive multiples of output_stride=16"):
        recipe("--image-size", "40x80")
    with pytest.raises(SystemExit):
        recipe("--crop-size", "64 128")


def test_bundled_recipes_hold_the_paper_settings() -> None:
    paper = load_recipe("cityscapes")
    assert paper.members == 10 and paper.model.decoder_channels == 256
    assert paper.model.atrous_rates == (12, 24, 36) and paper.model.output_stride == 16
    assert paper.data.crop_size == (768, 768) and paper.data.scale_range == (0.5, 2.0)
    for schedule, lr in ((paper.teacher, 0.1), (paper.student, 0.01)):
        assert (schedule.lr, schedule.head_lr_factor, schedule.momentum) == (lr, 10.0, 0.9)
        assert (schedule.weight_decay, schedule.poly_power) == (5e-4, 0.9)
        assert (schedule.epochs, schedule.batch_size, schedule.amp) == (200, 16, True)
    assert paper.student.uncertainty_weight == 1.0
    assert paper.student.target_std_correction == 1  # the reference's torch.std
    synthetic = load_recipe("synthetic")
    assert synthetic.members == 5 and synthetic.data.source == "synthetic"
    # λ and head start of the bundled student (engines/MODEL_CARD.md); the prior scaled from
    # 0.065 by sqrt(5 / 4) for u_T with Bessel's correction
    assert (synthetic.student.uncertainty_weight, synthetic.student.uncertainty_prior) == (
        10.0, 0.073)
    assert synthetic.student.target_std_correction == 1
    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        load_recipe("nope")


def test_synthetic_data_rendered_once_and_mismatch_refused(data_root: Path) -> None:
    stamp = data_root / STAMP
    before = stamp.stat().st_mtime_ns
    config = DataConfig(source="synthetic", root=str(data_root), crop_size=SIZE,
                        synthetic=SYNTHETIC)
    train, val, meta = build_datasets(config, data_root.parent)
    assert (len(train), len(val)) == (16, 4) and stamp.stat().st_mtime_ns == before
    assert meta["synthetic"]["size"] == list(SIZE) and meta["source"] == "synthetic"
    train_paths = {Path(p).name for p, *_ in train.samples}
    val_paths = {Path(p).name for p, *_ in val.samples}
    assert train[0]["image"].shape == (*SIZE, 3)
    assert not np.array_equal(train[0]["image"], val[0]["image"])
    assert len(train_paths) == 16 and len(val_paths) == 4
    other = dataclasses.replace(config, synthetic=dataclasses.replace(SYNTHETIC, seed=6))
    with pytest.raises(ConfigError) as err:
        build_datasets(other, data_root.parent)
    assert str(err.value) == (
        f"{data_root} holds synthetic scenes rendered with other settings (seed 5 instead of "
        f"6; see {stamp}); delete the folder or set data.root (--data-root)")


def test_make_synthetic_output_is_training_data(tmp_path: Path) -> None:
    root = tmp_path / "synth"
    for split, count, seed in (("train", 4, 0), ("val", 2, 1)):
        assert cli_main(["make-synthetic", str(root), "--split", split, "--count", str(count),
                         "--seed", str(seed), "--size", "64x128"]) == 0
    config = DataConfig(source="synthetic", root=str(root), crop_size=SIZE, synthetic=SYNTHETIC)
    train, val, meta = build_datasets(config, tmp_path)
    assert (len(train), len(val)) == (4, 2) and train[0]["image"].shape == (64, 128, 3)
    # read as it is: the recipe's synthetic settings did not make it, so they are not claimed
    assert "synthetic" not in meta and not (root / STAMP).exists()


def test_recipe_validation_names_the_bad_setting() -> None:
    with pytest.raises(ConfigError, match="data.synthetic.anomaly_kind"):
        SyntheticDataConfig(anomaly_kind="photos")
    with pytest.raises(ConfigError, match="init_from_member"):
        TrainConfig(init_from_member=-1)
    with pytest.raises(ConfigError, match=r"teacher.outlier_classes: invalid value \(12, 19\)"):
        Recipe(name="x", teacher=TrainConfig(outlier_classes=(12, 19)))
    with pytest.raises(ConfigError, match="student.outlier_classes"):
        Recipe(name="x", student=TrainConfig(outlier_classes=(12,)))
    with pytest.raises(ConfigError, match="outlier_weight"):
        TrainConfig(outlier_weight=0.0)
    with pytest.raises(ConfigError, match=r"uncertainty_prior: invalid value 0.0.*\(0, 1\)"):
        TrainConfig(uncertainty_prior=0.0)
    with pytest.raises(ConfigError, match="teacher.uncertainty_prior"):
        Recipe(name="x", teacher=TrainConfig(uncertainty_prior=0.1))
