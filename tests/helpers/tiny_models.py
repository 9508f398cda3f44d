"""The tiny student ONNX (``export_models.write_student``) for tests in an environment without
torch, such as the Jazzy venv (``ROS_DISTRO=jazzy bash scripts/setup.sh``).

``student_onnx(folder)`` exports it where torch is importable; elsewhere it copies the one that
an environment with torch exported beforehand into the folder named by ``DUDES_TEST_MODELS``
(``python -m tests.helpers.tiny_models DIR``, which .ci/run runs with the default venv before
the Jazzy job); with neither, the test is skipped, saying so. Exports are deterministic (fixed
seed), so the copy is the model the test would have exported itself.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

FOLDER_VARIABLE = "DUDES_TEST_MODELS"
FILES = ("student.onnx", "student.json")  # the ONNX and its manifest


def student_onnx(folder: Path) -> Path:
    """``folder/student.onnx`` (manifest beside it): exported here, or copied from
    ``$DUDES_TEST_MODELS``; skips the calling test when neither is possible."""
    if importlib.util.find_spec("torch") is not None:
        from tests.helpers.export_models import write_student

        return write_student(folder)[1]
    named = os.environ.get(FOLDER_VARIABLE)
    source = Path(named) if named else None
    if source is None or not all((source / name).is_file() for name in FILES):
        pytest.skip(f"needs torch to export the tiny student, or {FILES} exported with torch "
                    f"in the folder that {FOLDER_VARIABLE} names "
                    "(python -m tests.helpers.tiny_models DIR)")
    for name in FILES:
        shutil.copy(source / name, folder / name)
    return folder / FILES[0]


def main(argv: list[str]) -> int:
    """``python -m tests.helpers.tiny_models DIR``: export the tiny student into DIR."""
    if len(argv) != 1:
        print("usage: python -m tests.helpers.tiny_models DIR", file=sys.stderr)
        return 2
    from tests.helpers.export_models import write_student

    folder = Path(argv[0])
    folder.mkdir(parents=True, exist_ok=True)
    write_student(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
