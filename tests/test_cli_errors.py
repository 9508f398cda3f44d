"""Bad input to the training, evaluation and calibration commands: one line
``dudes <command>: <what was wrong, which file, what was expected>``, exit status 2, no
traceback (unless --verbose)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dudes_ros.cli import main
from dudes_ros.data.synthetic import write_cityscapes_layout
from dudes_ros.model.checkpoint import save_checkpoint
from dudes_ros.model.config import ModelConfig
from dudes_ros.model.student import SegmentationNet
from tests.conftest import REPO

TINY = ModelConfig(decoder_channels=8, input_size=(64, 128))
MEMBER = dataclasses.replace(TINY, uncertainty_head=False)
LAYOUT = ("expected the Cityscapes layout <root>/leftImg8bit/<split>/<city>/"
          "<stem>_leftImg8bit.png with labels in <root>/gtFine/<split>/<city>/"
          "<stem>_gtFine_labelIds.png")
CHECKPOINT = "expected a .pt file written by dudes train-teacher or train-student"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Two members, a student, a member of another width, a truncated checkpoint, recipes and
    a small Cityscapes-layout folder (64x128)."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("bad")
    for i in range(2):
        save_checkpoint(out / f"m{i}.pt", SegmentationNet(MEMBER), role="member", metadata={})
    save_checkpoint(out / "wide.pt",
                    SegmentationNet(dataclasses.replace(MEMBER, decoder_channels=16)),
                    role="member", metadata={})
    save_checkpoint(out / "student.pt", SegmentationNet(TINY), role="student", metadata={})
    data = (out / "m0.pt").read_bytes()
    (out / "trunc.pt").write_bytes(data[: len(data) // 2])
    write_cityscapes_layout(out / "synth", "train", 4, 0, (64, 128))
    write_cityscapes_layout(out / "synth", "val", 2, 1, (64, 128))
    (out / "bad_value.yaml").write_text("name: bad\nteacher:\n  epochs: 0\n")
    (out / "typo.yaml").write_text("name: typo\ndata:\n  crop_sise: [64, 64]\n")
    (out / "tiny.yaml").write_text(json.dumps({
        "name": "tiny", "members": 2,
        "model": {"decoder_channels": 8, "input_size": [64, 128]},
        "data": {"source": "cityscapes", "crop_size": [64, 128], "num_workers": 0},
        "teacher": {"batch_size": 2, "epochs": 1}, "student": {"batch_size": 2, "epochs": 1}}))
    return out


def fails(capsys, *argv: str) -> str:
    """Run ``dudes argv``; require exit 2 and exactly one stderr line; return that line."""
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(f"dudes {argv[0]}: ")
    return lines[0]


def test_recipe_errors_name_the_file_and_key(files: Path, capsys) -> None:
    common = ["--member-index", "0", "--out", str(files / "run"), "--device", "cpu"]
    assert fails(capsys, "train-teacher", "--recipe", str(files / "bad_value.yaml"),
                 *common) == (f"dudes train-teacher: {files / 'bad_value.yaml'}: "
                              "teacher.epochs: invalid value 0; expected > 0")
    assert fails(capsys, "train-teacher", "--recipe", str(files / "typo.yaml"), *common) == (
        f"dudes train-teacher: {files / 'typo.yaml'}: data: unknown key(s) ['crop_sise']; "
        "valid keys are ['crop_size', 'hflip', 'num_workers', 'root', 'scale_range', "
        "'source', 'synthetic', 'train_split', 'val_batch_size', 'val_split']")
    assert fails(capsys, "train-teacher", "--recipe", str(files / "tiny.yaml"), "--members",
                 "1", *common) == (
        f"dudes train-teacher: recipe {files / 'tiny.yaml'} with --members 1: members: "
        "invalid value 1; expected >= 2 (u_T is the std over members of p(predicted class))")
    assert fails(capsys, "train-teacher", "--recipe", str(files / "nope.yaml"), *common) == (
        f"dudes train-teacher: recipe file {files / 'nope.yaml'} does not exist")


def test_data_errors_name_the_folder_and_the_layout(files: Path, capsys) -> None:
    nowhere = files / "nowhere"
    assert fails(capsys, "train-teacher", "--recipe", str(files / "tiny.yaml"),
                 "--member-index", "0", "--out", str(files / "run"), "--data-root",
                 str(nowhere), "--device", "cpu") == (
        f"dudes train-teacher: {nowhere}/leftImg8bit/train does not exist; {LAYOUT}")
    assert fails(capsys, "calibrate", "--data", str(nowhere), "--dry-run") == (
        f"dudes calibrate: {nowhere}/leftImg8bit/val does not exist; {LAYOUT}")
    assert fails(capsys, "evaluate", "--data", str(nowhere), "--student",
                 str(files / "student.pt"), "--report", str(files / "rep")) == (
        f"dudes evaluate: {nowhere}/leftImg8bit/val does not exist; {LAYOUT}")
    assert fails(capsys, "train-teacher", "--recipe", str(files / "tiny.yaml"),
                 "--member-index", "0", "--out", str(files / "run"), "--data-root",
                 str(files / "synth"), "--batch-size", "8", "--device", "cpu") == (
        "dudes train-teacher: 4 training images are fewer than one batch of 8; lower the "
        "batch size (--batch-size) or add images")


def test_checkpoint_errors_name_the_file(files: Path, capsys) -> None:
    evaluate = ["evaluate", "--data", str(files / "synth"), "--report", str(files / "rep"),
                "--device", "cpu"]
    assert fails(capsys, *evaluate, "--student", str(files / "nope.pt")) == (
        f"dudes evaluate: checkpoint {files / 'nope.pt'} does not exist; {CHECKPOINT}")
    assert fails(capsys, *evaluate, "--student", str(files / "trunc.pt")) == (
        f"dudes evaluate: checkpoint {files / 'trunc.pt'} cannot be read: the file is "
        f"truncated or damaged (File is not a zip file); {CHECKPOINT}")
    assert fails(capsys, *evaluate, "--student", str(files / "m0.pt")) == (
        f"dudes evaluate: --student {files / 'm0.pt'} is a 'member' checkpoint; expected a "
        "'student' checkpoint from dudes train-student")
    assert fails(capsys, *evaluate, "--student", str(files / "student.pt"), "--teacher",
                 str(files / "m0.pt"), str(files / "wide.pt")) == (
        f"dudes evaluate: teacher member {files / 'wide.pt'} has another architecture than "
        f"teacher member {files / 'm0.pt'}: decoder_channels 16 instead of 8")


def test_students_and_single_members_are_refused_as_teachers(files: Path, capsys) -> None:
    student = files / "student.pt"
    refused = (f"teacher member {student} is a 'student' checkpoint; teacher members are "
               "'member' checkpoints from dudes train-teacher")
    train = ["train-student", "--recipe", str(files / "tiny.yaml"), "--out",
             str(files / "run"), "--data-root", str(files / "synth"), "--device", "cpu"]
    assert fails(capsys, *train, "--teacher", str(student)) == f"dudes train-student: {refused}"
    assert fails(capsys, *train, "--teacher", str(files / "m0.pt"), str(student),
                 str(files / "m1.pt")) == f"dudes train-student: {refused}"
    assert fails(capsys, *train, "--teacher", str(files / "m0.pt")) == (
        "dudes train-student: a teacher needs at least 2 members (u_T is the std over members "
        f"of p(predicted class)), got 1: teacher member {files / 'm0.pt'}")
    assert fails(capsys, *train) == (
        "dudes train-student: recipe 'tiny' has 2 members, but the checkpoints of member(s) "
        f"[0, 1] are missing ({files / 'run/member-00/best.pt'}, "
        f"{files / 'run/member-01/best.pt'}); train them with dudes train-teacher "
        "--member-index I, set --members, or pass the member checkpoints with --teacher")
    assert fails(capsys, "evaluate", "--data", str(files / "synth"), "--student", str(student),
                 "--teacher", str(student), "--report", str(files / "rep"),
                 "--device", "cpu") == f"dudes evaluate: {refused}"


def test_option_errors(files: Path, capsys) -> None:
    assert fails(capsys, "calibrate", "--model", str(files / "student.pt"), "--data",
                 str(files / "synth"), "--dry-run") == (
        f"dudes calibrate: model {files / 'student.pt'} is not an existing .onnx file; "
        "expected the deployed student from dudes export (its manifest beside it is updated)")
    assert fails(capsys, "evaluate", "--data", str(files / "synth"), "--pixel-threshold", "2",
                 "--report", str(files / "rep")) == (
        "dudes evaluate: --pixel-threshold must lie in [0, 1], got 2.0")
    assert fails(capsys, "make-synthetic", str(files / "x"), "--enter", "3") == (
        "dudes make-synthetic: --enter/--leave need --sequence N")


def test_a_real_process_prints_one_line_and_verbose_adds_the_traceback(files: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "dudes_ros.cli", "evaluate", "--data", str(files / "synth"),
            "--student", str(files / "trunc.pt"), "--report", str(files / "rep")]
    quiet = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 2 and quiet.stdout == ""
    assert quiet.stderr.splitlines() == [
        f"dudes evaluate: checkpoint {files / 'trunc.pt'} cannot be read: the file is "
        f"truncated or damaged (File is not a zip file); {CHECKPOINT}"]
    loud = subprocess.run(argv + ["--verbose"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert loud.returncode == 2 and "Traceback" in loud.stderr
    assert "zipfile.BadZipFile" in loud.stderr
    assert loud.stderr.splitlines()[-1] == quiet.stderr.splitlines()[0]


def test_export_prints_each_parity_line_once(files: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "dudes_ros.cli", "export",
                           str(files / "student.pt"), "-o", str(tmp_path / "s.onnx")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines()
             if "labels agree" in line]
    assert len(lines) == 3 and all(line.startswith("parity [") for line in lines)
    assert len({line.split(":")[0] for line in lines}) == 3  # three shapes, each once
