"""``dudes doctor``: the environment facts a user checks first when a deployment misbehaves."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform


def _version(module: str) -> str | None:
    try:
        return getattr(importlib.import_module(module), "__version__", "installed")
    except Exception as exc:  # noqa: BLE001 - a broken install is a fact to report
        return None if isinstance(exc, ImportError) else f"broken: {exc}"


def collect() -> dict:
    """Facts about this machine as a JSON-ready dict."""
    facts: dict = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "ros_distro": os.environ.get("ROS_DISTRO") or _ros_distro_from_wheels(),
        "rmw_implementation": os.environ.get("RMW_IMPLEMENTATION") or "default (rmw_fastrtps_cpp)",
        "ros_domain_id": os.environ.get("ROS_DOMAIN_ID", "0 (default)"),
        "fastdds_profile": os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE"),
        "rclpy": _version("rclpy"),
        "numpy": _version("numpy"),
        "opencv": _version("cv2"),
        "torch": _version("torch"),
        "onnxruntime": _version("onnxruntime"),
        "tensorrt": _version("tensorrt"),
        "cuda_python": _version("cuda.bindings"),
    }
    try:
        import onnxruntime

        facts["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        facts["onnxruntime_providers"] = []
    facts["cuda"] = None
    facts["gpus"] = []
    try:
        import torch

        facts["cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(i)
                facts["gpus"].append({"name": props.name,
                                      "compute_capability": f"{props.major}.{props.minor}",
                                      "memory_gib": round(props.total_memory / 2**30, 1)})
    except ImportError:
        pass
    if not facts["gpus"]:  # a torch-free TensorRT install still sees its GPUs via cuda-python
        from dudes_ros.runtime import cuda

        facts["gpus"] = [{"name": gpu.name, "compute_capability": gpu.compute_capability}
                         for gpu in map(cuda.gpu_info, range(cuda.gpu_count()))]
    facts["auto_backend"] = _auto_choice()
    return facts


def _auto_choice() -> str:
    """What ``backend: auto`` runs the bundled model on here, and why (as the node logs it)."""
    from dudes_ros.inference.factory import choose_backend
    from dudes_ros.resources import bundled_model

    try:
        choice = choose_backend(bundled_model())
    except RuntimeError as exc:
        return f"none: {exc}"
    fallback = " (CPU fallback: a GPU is visible)" if choice.cpu_fallback else ""
    return f"{choice.backend} on {choice.device}{fallback}: {choice.reason}"


def _ros_distro_from_wheels() -> str | None:
    try:
        from importlib.metadata import distributions
    except ImportError:
        return None
    for dist in distributions():
        name = dist.metadata["Name"] or ""
        if name.startswith("ros-") and name.endswith("-rclpy") and name.count("-") == 2:
            return name.split("-")[1]
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")


def run(args: argparse.Namespace) -> int:
    facts = collect()
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        shown = ("not set" if key == "fastdds_profile" else "not installed") if value is None \
            else value
        if isinstance(value, list):
            shown = ", ".join(map(str, value)) if value else "none"
        print(f"{key:<{width}}  {shown}")
    return 0
