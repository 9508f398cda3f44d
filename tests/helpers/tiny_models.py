"""Tiny student ONNX files for tests, also in an environment without torch such as the Jazzy
venv (``ROS_DISTRO=jazzy bash scripts/setup.sh``).

``tiny_onnx(folder, recipe)`` exports the recipe's model where torch is importable; elsewhere
it copies the one that an environment with torch exported beforehand into the folder named by
``DUDES_TEST_MODELS`` (``python -m tests.helpers.tiny_models DIR`` exports every recipe; .ci/run
runs it with the default venv before the Jazzy job); with neither, the test is skipped, saying
so. Exports are deterministic (fixed seeds), so the copy is the model the test would have
exported itself. Recipes:

* ``student``: ``export_models.write_student`` (BatchNorm statistics perturbed), 64x128;
* ``node``: ``benchmarks.soak_node.export_model`` at 64x128 (seed 0, decoder 16, BatchNorm
  as initialised), the model of ``tests/test_node.py``'s and ``tests/test_fuzz.py``'s
  fixtures.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

FOLDER_VARIABLE = "DUDES_TEST_MODELS"
SIZE = (64, 128)


def _student(folder: Path) -> Path:
    from tests.helpers.export_models import write_student

    return write_student(folder)[1]


def _node(folder: Path) -> Path:
    from benchmarks.soak_node import export_model

    exported = export_model(folder, SIZE)
    path = folder / "node.onnx"
    exported.with_suffix(".json").rename(path.with_suffix(".json"))
    return exported.rename(path)


RECIPES = {"student": _student, "node": _node}  # each writes folder/<recipe>.onnx + .json


def tiny_onnx(folder: Path, recipe: str = "student") -> Path:
    """``folder/<recipe>.onnx`` (manifest beside it): exported here, or copied from
    ``$DUDES_TEST_MODELS``; skips the calling test when neither is possible."""
    if importlib.util.find_spec("torch") is not None:
        return RECIPES[recipe](folder)
    names = (f"{recipe}.onnx", f"{recipe}.json")
    named = os.environ.get(FOLDER_VARIABLE)
    source = Path(named) if named else None
    if source is None or not all((source / name).is_file() for name in names):
        pytest.skip(f"needs torch to export the tiny {recipe!r} model, or {names} exported "
                    f"with torch in the folder that {FOLDER_VARIABLE} names "
                    "(python -m tests.helpers.tiny_models DIR)")
    for name in names:
        shutil.copy(source / name, folder / name)
    return folder / names[0]


def main(argv: list[str]) -> int:
    """``python -m tests.helpers.tiny_models DIR``: export every recipe into DIR."""
    if len(argv) != 1:
        print("usage: python -m tests.helpers.tiny_models DIR", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    folder.mkdir(parents=True, exist_ok=True)
    for export in RECIPES.values():
        export(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
