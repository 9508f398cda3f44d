"""Where the package's installed files live (share folder, bundled model, default configs)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "dudes_ros"
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_directory() -> Path:
    """The package's share folder: from the ament index (colcon install or sourced workspace,
    or a pip install into a prefix listed in AMENT_PREFIX_PATH), else this interpreter's
    prefix, else the source checkout (editable installs, training machines without ROS)."""
    if os.environ.get("AMENT_PREFIX_PATH"):
        try:
            from ament_index_python.packages import get_package_share_directory

            return Path(get_package_share_directory(PACKAGE))
        except (ImportError, LookupError):  # PackageNotFoundError is a KeyError
            pass
    prefix_share = Path(sys.prefix) / "share" / PACKAGE
    if (prefix_share / "package.xml").is_file():
        return prefix_share
    return _SOURCE_ROOT


def config_path(name: str) -> Path:
    """A file in the installed ``config/`` folder."""
    return share_directory() / "config" / name


def bundled_model() -> Path:
    """The bundled student ONNX (its manifest lies beside it as ``.json``)."""
    return share_directory() / "engines" / "dudes_student.onnx"
