"""Shared pytest setup: markers that skip without hardware/data, and ROS test isolation."""

from __future__ import annotations

import fcntl
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dudes_ros.ros.distro import current, use_profile

REPO = Path(__file__).resolve().parent.parent
FASTDDS_PROFILE = REPO / "config" / "fastdds_large_images.xml"
SHM = Path("/dev/shm")
SHM_PREFIX = current().shm_prefix  # fastdds_ (Fast DDS 3, Kilted) or fastrtps_ (2, Jazzy)

# Isolation for every test process that runs ROS nodes: its own domain, localhost discovery,
# and the large-image Fast DDS profile. Set at import so subprocesses inherit it too.
os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
use_profile(str(FASTDDS_PROFILE))  # under the names this distribution's Fast DDS reads


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _tensorrt_available() -> bool:
    from dudes_ros.runtime.cuda import bindings_available

    return (importlib.util.find_spec("tensorrt") is not None and bindings_available()
            and _cuda_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skips = {
        "gpu": (not _cuda_available(), "needs a CUDA GPU; none is visible to torch"),
        "tensorrt": (not _tensorrt_available(),
                     "needs the tensorrt and cuda-python packages and a CUDA GPU"),
    }
    for item in items:
        for marker, (absent, reason) in skips.items():
            if absent and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def ros_env() -> dict[str, str]:
    """Environment for subprocesses that run nodes: same isolated domain as this process."""
    return dict(os.environ)


@pytest.fixture(scope="module")
def ros_context():
    """rclpy initialised for the test module's own nodes, shut down after it."""
    rclpy = pytest.importorskip("rclpy")
    rclpy.init()
    yield
    rclpy.shutdown()


def _lock_held(lock: Path) -> bool:
    """Whether a live process holds ``lock`` (Fast DDS keeps a segment's ``_el`` file
    flock-ed for as long as its owner lives)."""
    try:
        with lock.open("ab") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    return False


@pytest.fixture(scope="session", autouse=True)
def _remove_killed_processes_fastdds_segments() -> Iterator[None]:
    """A process the tests kill with SIGKILL (a camera dying mid-stream) leaves its Fast DDS
    shared-memory segment in /dev/shm for good. Remove the segments this session created whose
    owner is gone. Fast DDS's ``fastdds shm clean`` does the same check but machine-wide; this
    only touches what the session made."""
    before = set(SHM.glob(f"{SHM_PREFIX}*_el"))
    yield
    for lock in set(SHM.glob(f"{SHM_PREFIX}*_el")) - before:
        if not lock.name.startswith(f"{SHM_PREFIX}port") and not _lock_held(lock):
            for path in (lock, lock.with_name(lock.name.removesuffix("_el"))):
                path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def demo_bag(tmp_path_factory) -> Path:
    """The bag of a short ``dudes demo`` run (``tests/helpers/demo_bag.py``), made once."""
    pytest.importorskip("rclpy")
    from tests.helpers.demo_bag import write_demo_bag

    return write_demo_bag(tmp_path_factory.mktemp("demo"))


@pytest.fixture(params=["10.13.0.35", "11.4.0.106"])
def trt_version(request) -> str:
    """Each TensorRT version the test stand-in plays (``tests/helpers/standins.VERSIONS``): a
    test taking this fixture runs once per version. Pass it on:
    ``standins.installed(trt_version)`` for this process, ``standins.standin_env(env,
    trt_version)`` for a subprocess, or take ``trt_standin`` for the module itself."""
    return request.param


@pytest.fixture
def trt_standin(trt_version):
    """The stand-in ``tensorrt`` module playing ``trt_version`` (with cuda-python's stand-in),
    for one test; forgotten afterwards."""
    from tests.helpers import standins

    with standins.installed(trt_version):
        import tensorrt

        yield tensorrt
