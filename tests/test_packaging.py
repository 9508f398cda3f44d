"""The package installs the ROS way (colcon) and the Python way (pip) with its share folder."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SHARE_FILES = ("package.xml", "launch", "config")


def _copy_source(dest: Path) -> Path:
    """The package's tracked-style sources without build artefacts or the venv."""
    ignore = shutil.ignore_patterns(".venv", ".git", "build", "install", "log", "*.egg-info",
                                    "__pycache__", ".pytest_cache", ".ruff_cache", "demo_output",
                                    "runs", "*.engine")
    return Path(shutil.copytree(REPO, dest, ignore=ignore))


@pytest.mark.slow
def test_pip_install_into_fresh_venv_registers_share_folder(tmp_path):
    src = _copy_source(tmp_path / "src")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--no-deps", str(src)], check=True)
    # ament_index_python is pure Python: query the fresh prefix from this interpreter exactly
    # as a user does after `export AMENT_PREFIX_PATH=$VIRTUAL_ENV`.
    code = ("from ament_index_python.packages import get_package_share_directory as g; "
            "import os; d = g('dudes_ros'); print(d); print(sorted(os.listdir(d)))")
    env = dict(os.environ, AMENT_PREFIX_PATH=str(venv))
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         capture_output=True, text=True).stdout.splitlines()
    share = Path(out[0])
    assert share == venv / "share" / "dudes_ros"
    for name in SHARE_FILES:
        assert name in out[1], f"{name} missing from {share}"
    assert (share / "config" / "fastdds_large_images.xml").is_file()
    assert (venv / "bin" / "dudes").is_file() and (venv / "bin" / "dudes_node").is_file()


@pytest.mark.slow
def test_colcon_build_installs_ament_python_package(tmp_path):
    colcon = Path(sys.executable).parent / "colcon"
    if not colcon.is_file():
        pytest.skip("colcon is not installed in this environment")
    ws = tmp_path / "ws"
    _copy_source(ws / "src" / "dudes_ros")
    result = subprocess.run([str(colcon), "build", "--base-paths", "src"], cwd=ws,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    share = ws / "install" / "dudes_ros" / "share" / "dudes_ros"
    for name in SHARE_FILES:
        assert (share / name).exists(), f"{name} missing from {share}"
    assert (ws / "install" / "dudes_ros" / "lib" / "dudes_ros" / "dudes_node").is_file()
    assert (ws / "install" / "dudes_ros" / "share" / "ament_index" / "resource_index"
            / "packages" / "dudes_ros").is_file()
