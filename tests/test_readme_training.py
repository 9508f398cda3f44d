"""The training walk-through of docs/training.md, run as written (its own quick settings) in an
empty folder: data, members, student, export, calibration, evaluation report."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dudes_ros.model.checkpoint import read_checkpoint
from dudes_ros.train.recipes import load_recipe
from tests.conftest import REPO

pytestmark = pytest.mark.slow
DOC = REPO / "docs" / "training.md"
SECTION = "## The synthetic recipe, step by step"


def training_block() -> str:
    """The first bash block of the walk-through section of docs/training.md, verbatim."""
    text = DOC.read_text()
    section = text[text.index(SECTION):]
    match = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert match, f"no bash block under {SECTION!r} in {DOC}"
    return match.group(1)


def test_readme_block_is_the_quick_chain() -> None:
    block = training_block()
    assert block.splitlines()[0].startswith('QUICK="') and " M=2" in block.splitlines()[0]
    order = [block.index(f"dudes {cmd} ") for cmd in
             ("make-synthetic", "train-teacher", "train-student", "export", "calibrate",
              "evaluate")]
    assert order == sorted(order)  # calibrate before evaluate: the report has its threshold


def test_readme_training_walkthrough_runs_as_written(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "dudes"  # what `pip install` puts on PATH, for this checkout
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m dudes_ros.cli "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                       os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", training_block()],
                          cwd=work, env=env, capture_output=True, text=True, timeout=540)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-4000:]
    print(f"README training block: {seconds:.0f} s")

    runs = work / "runs" / "synth"
    for i in (0, 1):
        meta = read_checkpoint(runs / f"member-{i:02d}" / "last.pt")["metadata"]
        assert (meta["step"], meta["members"], meta["data"]["root"]) == (3, 2, "data/synth")
        assert meta["data"]["train_images"] == 300 and meta["data"]["val_images"] == 60
    student = read_checkpoint(runs / "student" / "best.pt")
    assert student["training_state"] is None
    assert student["model_config"]["input_size"] == [64, 128]
    recipe = load_recipe(runs / "student" / "recipe.yaml")
    assert (recipe.members, recipe.model.input_size, recipe.data.crop_size) == (
        2, (64, 128), (64, 128))

    manifest = json.loads((runs / "student.json").read_text())
    ood = manifest["ood"]
    assert ood["data"]["frames"] == 200 and ood["data"]["root"] == "data/calib"
    assert 0.0 < ood["pixel_threshold"] <= 1.0
    assert done.stdout.count("parity [") == 3  # each parity check printed once

    report = runs / "eval"
    results = json.loads((report / "metrics.json").read_text())
    assert results["frames"] == 100
    assert results["operating_point"]["pixel"] == ood["pixel_threshold"]
    assert results["operating_point"]["frame"] == ood["frame_threshold"]
    rows = {r["method"]: r for r in results["comparison"]}
    assert set(rows) == {"student_u", "teacher_std", "teacher_entropy", "teacher_mi",
                         "member_max_softmax", "member_entropy"}
    assert rows["student_u"]["pixel_threshold"] == ood["pixel_threshold"]
    assert rows["teacher_std"]["forward_passes"] == 2
    text = (report / "report.md").read_text()
    assert (f"The student's PAvPU is at its operating pixel threshold "
            f"{ood['pixel_threshold']:.4g} (from the manifest of runs/synth/student.onnx)") in text
    for name in ("examples.png", "reliability.png", "anomaly_roc_pr.png"):
        assert (report / name).stat().st_size > 1000, name
