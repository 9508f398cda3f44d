"""``dudes doctor``: the environment facts a user checks first when a deployment misbehaves."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform

from dudes_ros.ros.distro import current, current_name, profile_facts


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
        "ros_distro": current_name(),
        "rmw_implementation": os.environ.get("RMW_IMPLEMENTATION") or "default (rmw_fastrtps_cpp)",
        "ros_domain_id": os.environ.get("ROS_DOMAIN_ID", "0 (default)"),
        # Fast DDS 3 (Kilted) reads the first, Fast DDS 2 (Jazzy, Humble) the second
        **{v.lower(): value for v, value in profile_facts().items()},
        "fastdds_profile_read_from": _profile_read_from(),
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

        counted = cuda.gpu_count()
        facts["gpus"] = [{"name": gpu.name, "compute_capability": gpu.compute_capability}
                         for gpu in map(cuda.gpu_info, range(counted.count or 0))]
        if counted.count is None and facts["cuda_python"] and cuda.driver_present():
            facts["gpu_count_error"] = counted.error
    facts["auto_backend"] = _auto_choice()
    facts["hints"] = _hints(facts)
    return facts


def _hints(facts: dict) -> list[str]:
    """What to install or set, for each missing or broken piece found."""
    from dudes_ros.runtime.tensorrt_support import INSTALL_TENSORRT, SUPPORTED_TEXT

    hints = []
    if not any(facts.get(k) for k in facts if k.endswith("_default_profiles_file")):
        hints.append("Fast DDS profile not set: with default transports Fast DDS drops about "
                     "half of 640x480 frames at 30 Hz; export FASTDDS_DEFAULT_PROFILES_FILE "
                     "(Fast DDS 3, Kilted) and FASTRTPS_DEFAULT_PROFILES_FILE (Fast DDS 2, "
                     "Jazzy, Humble) = the installed config/fastdds_large_images.xml")
    if not facts.get("rclpy"):
        hints.append("rclpy not importable: source a ROS 2 install (Jazzy, Kilted, Humble) or "
                     "use the venv of scripts/setup.sh")
    if not facts.get("tensorrt"):
        hints.append(f"TensorRT not installed (optional, for the GPU engine; {SUPPORTED_TEXT}): "
                     f"{INSTALL_TENSORRT}")
    elif not facts.get("cuda_python"):
        hints.append(f"TensorRT is installed but cuda-python is not: {INSTALL_TENSORRT}")
    if facts.get("gpu_count_error"):
        hints.append(f"the GPUs cannot be counted: {facts['gpu_count_error']}")
    if not facts.get("torch"):
        hints.append("torch not installed (needed only to train, export or run .pt "
                     "checkpoints): pip install 'dudes_ros[torch]'")
    return hints


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


def _profile_read_from() -> str:
    """Which profile variable(s) this environment's Fast DDS generation loads."""
    distro = current()
    return f"{' and '.join(distro.reads_profile_from)} (Fast DDS {distro.fastdds_major}.x)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")


def run(args: argparse.Namespace) -> int:
    facts = collect()
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        unset = "not set" if key.endswith("_default_profiles_file") else "not installed"
        shown = unset if value is None \
            else value
        if key == "hints":
            continue
        if isinstance(value, list):
            shown = ", ".join(map(str, value)) if value else "none"
        print(f"{key:<{width}}  {shown}")
    for hint in facts["hints"]:
        print(f"hint: {hint}")
    return 0
