"""The real rosdep resolves every key of package.xml on each supported ROS 2 distribution.

``rosdep install --from-paths src --ignore-src -y`` is the install route of a ROS machine. This
runs the pip ``rosdep`` offline against a snapshot of the upstream rosdistro database
(``<repo>/../shared/vendor/rosdistro``, or the folder in ``DUDES_ROSDISTRO``; see its README):
a sources list of ``file://`` URLs, ``ROSDISTRO_INDEX_URL`` and a temporary ``ROS_HOME`` for
rosdep's cache. ``--simulate --reinstall`` prints every install command whatever this machine
has installed, so the commands are compared with what each key must install.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

ROSDISTRO = Path(os.environ.get("DUDES_ROSDISTRO",
                                REPO.parent / "shared" / "vendor" / "rosdistro"))
ROSDEP = Path(sys.executable).parent / "rosdep"

# The supported distributions and the Ubuntu release each is built for (REP 2000).
DISTRIBUTIONS = {"humble": "jammy", "jazzy": "noble", "kilted": "noble", "lyrical": "resolute"}

# What each non-ROS key of package.xml installs on Ubuntu, by installer. A ROS package key
# installs the apt package ros-<distro>-<name with - for _>.
SYSTEM_KEYS = {
    "python3-numpy": ("apt", "python3-numpy"),
    "python3-yaml": ("apt", "python3-yaml"),
    "python3-opencv": ("apt", "python3-opencv"),
    "python3-pil": ("apt", "python3-pil"),
    "python3-filelock": ("apt", "python3-filelock"),
    "python3-tqdm": ("apt", "python3-tqdm"),
    "python3-matplotlib": ("apt", "python3-matplotlib"),
    "python3-skimage": ("apt", "python3-skimage"),
    "python3-onnxruntime-pip": ("pip", "onnxruntime"),
    "python3-rosbags-pip": ("pip", "rosbags"),
    "python3-pytest": ("apt", "python3-pytest"),
    "python3-pytest-timeout": ("apt", "python3-pytest-timeout"),
    "python3-hypothesis": ("apt", "python3-hypothesis"),
    "python3-psutil": ("apt", "python3-psutil"),
    "python3-rosdep": ("apt", "python3-rosdep"),
}
DEPEND_TAGS = ("depend", "buildtool_depend", "build_depend", "exec_depend", "test_depend")

# The mistakes of the package.xml this replaced: neither is a rosdep key on any distribution.
BROKEN_PACKAGES = {
    "buildtool_as_key": "<buildtool_depend>ament_python</buildtool_depend>",
    "lifecycle_as_package": "<exec_depend>rclpy_lifecycle</exec_depend>",
}
BROKEN_DISTRO = "kilted"

# Variables of a sourced ROS environment: with them, --ignore-src also skips every key that
# names a package installed there, which would hide a key missing from the database.
ROS_ENVIRONMENT = ("AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH", "COLCON_PREFIX_PATH",
                   "ROS_PACKAGE_PATH", "ROS_DISTRO", "ROS_PYTHON_VERSION", "ROS_OS_OVERRIDE")

INSTALL_LINE = re.compile(r"^\s*(?:sudo -H )?(?P<cmd>apt-get install -y|\S*pip\S* install -U -I"
                          r"|\S+ -m pip install -U -I) (?P<pkg>\S+)$")


def _keys(package_xml: Path) -> list[str]:
    root = ET.parse(package_xml).getroot()
    return [element.text.strip() for tag in DEPEND_TAGS for element in root.iter(tag)]


def _expected_installs(distro: str) -> set[tuple[str, str]]:
    expected = set()
    for key in _keys(REPO / "package.xml"):
        if key.startswith("python3-"):
            assert key in SYSTEM_KEYS, f"{key} from package.xml is missing from SYSTEM_KEYS"
            expected.add(SYSTEM_KEYS[key])
        else:
            expected.add(("apt", f"ros-{distro}-{key.replace('_', '-')}"))
    return expected


def _installs(output: str) -> set[tuple[str, str]]:
    """(installer, package) of every install command ``rosdep install --simulate`` printed."""
    found = set()
    for line in output.splitlines():
        match = INSTALL_LINE.match(line)
        if match:
            installer = "apt" if match["cmd"].startswith("apt-get") else "pip"
            found.add((installer, match["pkg"]))
    return found


def _package_xml(name: str, depend: str) -> str:
    return (f'<?xml version="1.0"?>\n<package format="3"><name>{name}</name>'
            "<version>0.0.0</version><description>rosdep test</description>"
            '<maintainer email="test@dudes-ros.invalid">test</maintainer>'
            f"<license>Apache-2.0</license>{depend}"
            "<export><build_type>ament_python</build_type></export></package>\n")


@pytest.fixture(scope="module")
def rosdep_runs(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """``rosdep install --simulate`` of this package for every distribution, and of the broken
    packages on one, run side by side after one offline ``rosdep update``."""
    # CI must show rosdep resolving: there a missing piece fails instead of skipping.
    missing = pytest.fail if os.environ.get("CI") == "true" else pytest.skip
    if not (ROSDISTRO / "index-v4.yaml").is_file():
        missing(f"no rosdistro snapshot at {ROSDISTRO} (set DUDES_ROSDISTRO to one)")
    if not ROSDEP.is_file():
        missing(f"rosdep is not installed in {ROSDEP.parent} (pinned in requirements.lock)")
    if shutil.which("apt-cache") is None:
        missing("rosdep's apt installer queries apt-cache even when simulating; none here")
    tmp = tmp_path_factory.mktemp("rosdep")
    sources = tmp / "sources.list.d"
    sources.mkdir()
    root = ROSDISTRO.resolve()
    (sources / "20-default.list").write_text(f"yaml file://{root}/rosdep/base.yaml\n"
                                             f"yaml file://{root}/rosdep/python.yaml\n")
    # The index of the distributions tested only: `rosdep update` parses every distribution
    # file the index names, which is most of its time.
    index = yaml.safe_load((root / "index-v4.yaml").read_text())
    index["distributions"] = {
        name: dict(entry, distribution=[f"file://{root}/{path}" for path in entry["distribution"]])
        for name, entry in index["distributions"].items() if name in DISTRIBUTIONS}
    assert set(index["distributions"]) == set(DISTRIBUTIONS), f"{root}/index-v4.yaml"
    (tmp / "index-v4.yaml").write_text(yaml.safe_dump(index))
    env = {name: value for name, value in os.environ.items() if name not in ROS_ENVIRONMENT}
    env.update(ROSDEP_SOURCE_PATH=str(sources), ROSDISTRO_INDEX_URL=f"file://{tmp}/index-v4.yaml",
               ROS_HOME=str(tmp / "ros_home"))
    update = subprocess.run([str(ROSDEP), "update"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert update.returncode == 0, update.stdout + update.stderr

    broken = tmp / "broken" / "src"
    for name, depend in BROKEN_PACKAGES.items():
        (broken / name).mkdir(parents=True)
        (broken / name / "package.xml").write_text(_package_xml(name, depend))

    def install(src: Path, distro: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(ROSDEP), "install", "--from-paths", str(src), "--ignore-src", "--simulate",
             "--reinstall", "-y", "--rosdistro", distro,
             "--os", f"ubuntu:{DISTRIBUTIONS[distro]}"],
            env=env, capture_output=True, text=True, timeout=120)

    # The checkout itself, as a user's workspace holds it (rosdep skips hidden folders such as
    # the venvs; colcon marks its build folders COLCON_IGNORE).
    jobs = {distro: (REPO, distro) for distro in DISTRIBUTIONS}
    jobs["broken"] = (broken, BROKEN_DISTRO)
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(install, *job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("distro", DISTRIBUTIONS)
def test_rosdep_installs_every_key_of_package_xml(rosdep_runs, distro):
    result = rosdep_runs[distro]
    output = result.stdout + result.stderr
    assert "Cannot locate" not in output, output
    assert result.returncode == 0, output
    assert _installs(output) == _expected_installs(distro), output


def test_rosdep_run_reports_keys_it_cannot_locate(rosdep_runs):
    """The same run fails, naming each package and key, on the keys the old package.xml had."""
    result = rosdep_runs["broken"]
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "buildtool_as_key: Cannot locate rosdep definition for [ament_python]" in output
    assert ("lifecycle_as_package: Cannot locate rosdep definition for [rclpy_lifecycle]"
            in output)
