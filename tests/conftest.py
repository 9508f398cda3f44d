"""Shared pytest setup: markers that skip without hardware/data, and ROS test isolation."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FASTDDS_PROFILE = REPO / "config" / "fastdds_large_images.xml"

# Isolation for every test process that runs ROS nodes: its own domain, localhost discovery,
# and the large-image Fast DDS profile. Set at import so subprocesses inherit it too.
os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(FASTDDS_PROFILE))


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _tensorrt_available() -> bool:
    return importlib.util.find_spec("tensorrt") is not None and _cuda_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skips = {
        "gpu": (not _cuda_available(), "needs a CUDA GPU; none is visible to torch"),
        "tensorrt": (not _tensorrt_available(),
                     "needs the tensorrt Python package and a CUDA GPU"),
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
