"""What training checks before it starts: pretrained encoder weights (downloaded, or a local
file) and a batch that BatchNorm can train on. All fast: no training step runs."""

from __future__ import annotations

import argparse

import pytest
import torch
import torchvision

from dudes_ros.cli import main as dudes
from dudes_ros.commands.training_options import add_common_arguments, recipe_from_args
from dudes_ros.config import ConfigError
from dudes_ros.model.config import ModelConfig
from dudes_ros.model.student import EncoderWeightsError, SegmentationNet
from dudes_ros.train.loop import check_batch_size
from dudes_ros.train.recipes import load_recipe

TINY = dict(decoder_channels=16, input_size=(64, 128))


@pytest.fixture(scope="module")
def torchvision_resnet18(tmp_path_factory):
    """A randomly initialised torchvision resnet18 state dict (classifier included), saved as
    torchvision ships its ImageNet weights."""
    torch.manual_seed(1234)
    state = torchvision.models.resnet18().state_dict()
    path = tmp_path_factory.mktemp("weights") / "resnet18-local.pth"
    torch.save(state, path)
    return path, state


def assert_encoder_is(net: SegmentationNet, state: dict) -> None:
    own = net.encoder.state_dict()
    assert set(own) == set(state) - {"fc.weight", "fc.bias"}
    for key, tensor in own.items():
        assert torch.equal(tensor, state[key]), key


def test_encoder_starts_from_a_local_torchvision_file(torchvision_resnet18):
    path, state = torchvision_resnet18
    torch.manual_seed(0)  # another init than the file's, so equality means it was loaded
    net = SegmentationNet(ModelConfig(encoder_weights=str(path), **TINY))
    assert_encoder_is(net, state)


def test_encoder_starts_from_a_local_safetensors_file(tmp_path, torchvision_resnet18):
    from safetensors.torch import save_file

    _, state = torchvision_resnet18
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    assert_encoder_is(SegmentationNet(ModelConfig(encoder_weights=str(path), **TINY)), state)


def test_weights_that_do_not_fit_or_are_missing_are_one_clear_error(tmp_path,
                                                                    torchvision_resnet18):
    _, state = torchvision_resnet18
    wrong = dict(state, **{"conv1.weight": torch.zeros(8, 3, 3, 3)})
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(EncoderWeightsError, match=r"conv1.weight \(8, 3, 3, 3\) instead of "
                                                  r"\(64, 3, 7, 7\)"):
        SegmentationNet(ModelConfig(encoder_weights=str(tmp_path / "wrong.pth"), **TINY))
    partial = {k: v for k, v in state.items() if not k.startswith("layer4.")}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(EncoderWeightsError, match=r"missing \d+ tensor\(s\)"):
        SegmentationNet(ModelConfig(encoder_weights=str(tmp_path / "partial.pth"), **TINY))
    with pytest.raises(EncoderWeightsError, match="does not exist.*--encoder-weights FILE"):
        SegmentationNet(ModelConfig(encoder_weights=str(tmp_path / "nope.pth"), **TINY))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderWeightsError, match="cannot be read"):
        SegmentationNet(ModelConfig(encoder_weights=str(tmp_path / "junk.pth"), **TINY))
    with pytest.raises(EncoderWeightsError, match="nor a pretrained set"):
        SegmentationNet(ModelConfig(encoder_weights="imagenet22k", **TINY))


def test_a_failed_download_is_one_line_naming_the_local_file_option(monkeypatch, tmp_path,
                                                                    capsys):
    """No network: the Hub client's own error (what it raises offline) becomes one line."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("An error happened while trying to locate the file on "
                                      "the Hub. Please check your connection.")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    code = dudes(["train-teacher", "--recipe", "synthetic", "--encoder-weights", "imagenet",
                  "--member-index", "0", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("dudes train-teacher: cannot download the imagenet weights of the "
                          "resnet18 encoder from the Hugging Face Hub (smp-hub/resnet18.imagenet)")
    assert "--encoder-weights FILE" in err and "resnet18-f37072fd.pth" in err
    assert not (tmp_path / "run").exists()  # refused before any data was rendered


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_common_arguments(parser)
    return parser.parse_args(["--recipe", "cityscapes", "--out", "o", *argv])


def test_cityscapes_recipe_pretrains_the_student_encoder_and_the_option_overrides_it(
        torchvision_resnet18):
    recipe = load_recipe("cityscapes")
    assert recipe.model.encoder_weights == "imagenet"
    assert recipe.student.pretrained_encoder and not recipe.teacher.pretrained_encoder
    path, _ = torchvision_resnet18
    given = recipe_from_args(parse("--encoder-weights", str(path)), "student")
    assert given.model.encoder_weights == str(path)
    assert recipe_from_args(parse("--encoder-weights", "none"), "student").model \
        .encoder_weights is None


class _Stop(Exception):
    """Ends a training entry point once its network is built."""


def _built_network(module, monkeypatch, call) -> SegmentationNet:
    """The network ``call()`` builds in ``module`` (train.teacher or train.student), with the
    data, the teacher and the training loop stubbed out."""
    built = []
    monkeypatch.setattr(module, "SegmentationNet",
                        lambda config: built.append(SegmentationNet(config)) or built[-1])
    monkeypatch.setattr(module, "build_datasets", lambda *a, **k: (None, None, {}))
    monkeypatch.setattr(module, "Trainer", lambda **k: (_ for _ in ()).throw(_Stop()))
    with pytest.raises(_Stop):
        call()
    return built[0]


def test_members_start_random_and_the_student_from_the_file(tmp_path, torchvision_resnet18,
                                                            monkeypatch):
    """cityscapes: teacher.pretrained_encoder false, so a member's network (and the config its
    checkpoint stores) has no pretrained weights; the student's encoder is the file's."""
    from dudes_ros.train import student as student_mod
    from dudes_ros.train import teacher as teacher_mod

    path, state = torchvision_resnet18
    recipe = recipe_from_args(parse("--encoder-weights", str(path)), "teacher")
    member = _built_network(teacher_mod, monkeypatch,
                            lambda: teacher_mod.train_member(recipe, 0, tmp_path, device="cpu"))
    assert member.config.encoder_weights is None and member.uncertainty_head is None
    assert not torch.equal(member.encoder.conv1.weight, state["conv1.weight"])
    monkeypatch.setattr(student_mod, "load_ensemble",
                        lambda *a, **k: argparse.Namespace(config=recipe.model))
    student = _built_network(student_mod, monkeypatch, lambda: student_mod.train_student(
        recipe, [tmp_path / "m0.pt", tmp_path / "m1.pt"], tmp_path, device="cpu"))
    assert student.config.encoder_weights == str(path)
    assert_encoder_is(student, state)


@pytest.mark.parametrize("batch, processes, synced, message", [
    (1, 1, False, "batch size 1 (--batch-size) over 1 process(es) is 1 image per process; "
                  "BatchNorm needs at least 2 images per process: use --batch-size 2 or more"),
    (2, 2, False, "batch size 2 (--batch-size) over 2 process(es) is 1 image per process; "
                  "BatchNorm needs at least 2 images per process (CPU processes do not "
                  "synchronise it): use --batch-size 4 or more"),
    (3, 2, False, "batch size 3 (--batch-size) must be divisible by the number of processes"),
])
def test_a_batch_batchnorm_cannot_train_on_is_refused_in_one_line(batch, processes, synced,
                                                                   message):
    with pytest.raises(ConfigError) as exc:
        check_batch_size(batch, processes, synced_batchnorm=synced)
    assert str(exc.value).startswith(message)
    assert "\n" not in str(exc.value)


def test_batches_batchnorm_can_train_on():
    assert check_batch_size(4, 2, synced_batchnorm=False) == 2
    assert check_batch_size(2, 1, synced_batchnorm=False) == 2
    # SyncBatchNorm over 2 GPUs takes its statistics over both processes' images
    assert check_batch_size(2, 2, synced_batchnorm=True) == 1


def test_cli_refuses_a_batch_of_one_before_training_or_data(tmp_path, capsys):
    code = dudes(["train-teacher", "--recipe", "synthetic", "--batch-size", "1",
                  "--member-index", "0", "--out", str(tmp_path / "run"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == ("dudes train-teacher: batch size 1 (--batch-size) over 1 process(es) is 1 "
                   "image per process; BatchNorm needs at least 2 images per process: use "
                   "--batch-size 2 or more\n")
    assert not (tmp_path / "run").exists()


def _refusing_rank(rank: int, port: int, out: str) -> None:
    """One torchrun-like process of a 2-process gloo run with global batch 2."""
    import dataclasses
    import json
    import os
    from pathlib import Path

    from dudes_ros.train.teacher import train_member

    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    recipe = load_recipe("synthetic")
    recipe = dataclasses.replace(recipe, teacher=dataclasses.replace(recipe.teacher,
                                                                     batch_size=2))
    try:
        train_member(recipe, 0, Path(out) / "run", device="cpu")
        message = None
    except ConfigError as exc:
        message = str(exc)
    Path(out, f"rank{rank}.json").write_text(json.dumps(message))


def test_two_cpu_processes_with_one_image_each_are_refused_before_training(tmp_path):
    """As under `torchrun --nproc-per-node 2 ... --batch-size 2` on CPUs: every rank stops
    with the one-line reason before any data or training, instead of BatchNorm's traceback."""
    import json
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_refusing_rank, args=(port, str(tmp_path)), nprocs=2)
    expected = ("batch size 2 (--batch-size) over 2 process(es) is 1 image per process; "
                "BatchNorm needs at least 2 images per process (CPU processes do not "
                "synchronise it): use --batch-size 4 or more")
    for rank in range(2):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == expected
    assert not (tmp_path / "run").exists()
