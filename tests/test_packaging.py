"""The package installs the ROS way (colcon) and the Python way (pip) with its share folder;
package.xml and setup.py declare the same requirements; the sources run on Python 3.10."""

import ast
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO

SHARE_FILES = ("package.xml", "launch", "config")
BIN = Path(sys.executable).parent

# The test_depend keys of package.xml and the entry of setup.py's test extra each installs.
TEST_KEYS = {"python3-pytest": "pytest", "python3-pytest-timeout": "pytest-timeout",
             "python3-hypothesis": "hypothesis", "python3-psutil": "psutil",
             "python3-rosdep": "rosdep"}

# What runs on the robot: ROS 2 Humble's Python is 3.10.
PY310_SOURCES = ("dudes_ros", "launch", "setup.py")
# vermin reads torch's Tensor.long() as Python 2's long builtin; the conflicting evidence hides
# every finding in that file, so that rule is off.
VERMIN = ("--target=3.10-", "--violations", "--no-tips", "--eval-annotations", "--exclude", "long")
PY311_ONLY = """\
import tomllib
from datetime import UTC
from typing import Self


def parse(text: str) -> dict:
    try:
        return tomllib.loads(text)
    except* ValueError:
        return {"at": UTC}


def stars(*shape: *tuple[int, ...]) -> Self:
    return shape
"""


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


def _setup_py_literal(name: str):
    """The literal value setup.py assigns to ``name`` (setup.py runs setup() when imported)."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name
                                                 for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"setup.py assigns no literal {name}")


def _depends(tag: str) -> list[str]:
    return [e.text.strip() for e in ET.parse(REPO / "package.xml").getroot().iter(tag)]


def _names(requirements) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def _imports(path: Path, module_level_only: bool) -> set[str]:
    """Top-level names of the absolute imports in ``path``."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__", "dudes_ros"}


def test_package_xml_exec_depends_match_setup_py_runtime():
    keys_by_requirement = _setup_py_literal("RUNTIME_ROSDEP_KEYS")
    python_keys = [key for key in _depends("exec_depend") if key.startswith("python3-")]
    assert sorted(keys_by_requirement.values()) == sorted(python_keys), (
        "setup.py RUNTIME_ROSDEP_KEYS and package.xml's python3-* exec_depends differ")
    assert len(set(python_keys)) == len(python_keys) == len(keys_by_requirement)


def test_package_xml_test_depends_are_in_the_test_extra():
    python_keys = [key for key in _depends("test_depend") if key.startswith("python3-")]
    assert sorted(python_keys) == sorted(TEST_KEYS)
    extra = _names(_setup_py_literal("EXTRAS")["test"])
    assert {canonicalize_name(name) for name in TEST_KEYS.values()} <= extra


def test_imports_are_declared_requirements():
    """A third-party module the package imports at load time comes from a requirement of
    setup.py (runtime or an extra); every ROS package it imports anywhere, the launch file
    included, is an exec_depend of package.xml."""
    distributions = packages_distributions()
    declared = _names(_setup_py_literal("RUNTIME_ROSDEP_KEYS"))
    for requirements in _setup_py_literal("EXTRAS").values():
        declared |= _names(requirements)
    exec_depends = set(_depends("exec_depend"))
    sources = sorted((REPO / "dudes_ros").rglob("*.py"))
    undeclared, missing_keys = {}, {}
    for path in sources:
        for module in _imports(path, module_level_only=True):
            names = {canonicalize_name(d) for d in distributions.get(module, [])}
            if names and not any(n.startswith("ros-") for n in names) and not names & declared:
                undeclared[module] = path.relative_to(REPO)
    for path in sources + sorted((REPO / "launch").glob("*.py")):
        for module in _imports(path, module_level_only=False):
            dists = distributions.get(module, [])
            is_ros = (any(d.startswith("ros-") for d in dists)
                      or path.parent.name == "launch")
            if is_ros and module not in exec_depends:
                missing_keys[module] = path.relative_to(REPO)
    assert not undeclared, f"imported but in no setup.py requirement: {undeclared}"
    assert not missing_keys, f"ROS packages imported but not exec_depend: {missing_keys}"


def test_sources_run_on_python_3_10():
    vermin = BIN / "vermin"
    if not vermin.is_file():
        pytest.skip(f"vermin is not installed in {BIN} (pinned in requirements.lock)")
    result = subprocess.run([str(vermin), *VERMIN, *PY310_SOURCES], cwd=REPO,
                            capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "incompatible versions" not in output, output
    syntax = subprocess.run([str(BIN / "ruff"), "check", "--config", "ruff.toml", "--ignore",
                             "ALL", "--no-cache", *PY310_SOURCES], cwd=REPO,
                            capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr
    assert re.search(r'^target-version = "py310"$', (REPO / "ruff.toml").read_text(), re.M)


def test_python_3_10_checks_catch_3_11_only_code(tmp_path):
    """vermin names the 3.11 standard library and except*; ruff, which lints the repository
    with target-version py310, names the syntax (it alone sees star annotations)."""
    vermin = BIN / "vermin"
    if not vermin.is_file():
        pytest.skip(f"vermin is not installed in {BIN} (pinned in requirements.lock)")
    source = tmp_path / "py311.py"
    source.write_text(PY311_ONLY)
    result = subprocess.run([str(vermin), *VERMIN, str(source)], capture_output=True, text=True)
    assert result.returncode != 0
    for finding in ("'tomllib' module requires !2, 3.11", "'datetime.UTC' member requires",
                    "'typing.Self' member requires", "`except*` requires !2, 3.11"):
        assert finding in result.stdout, result.stdout
    syntax = subprocess.run([str(BIN / "ruff"), "check", "--config", str(REPO / "ruff.toml"),
                             "--ignore", "ALL", "--no-cache", "--output-format", "concise",
                             str(source)], capture_output=True, text=True)
    assert syntax.returncode != 0
    found = sorted(line.split("invalid-syntax: ")[1] for line in syntax.stdout.splitlines()
                   if "invalid-syntax" in line)
    assert found == ["Cannot use `except*` on Python 3.10 (syntax was added in Python 3.11)",
                     "Cannot use star annotation on Python 3.10 (syntax was added in Python "
                     "3.11)"], syntax.stdout
