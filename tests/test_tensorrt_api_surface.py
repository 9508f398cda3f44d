"""Every TensorRT name the package uses exists in the real API of every supported version, and
the stand-in offers nothing the real API lacks.

The surfaces (tests/standins/tensorrt/api/<version>.txt) are read from NVIDIA's bindings wheels
by scripts/tensorrt_api_surface.py. The package's names are found with ``ast``: every
``trt.<Name>...`` chain (``trt`` or whatever ``import tensorrt as`` binds), and every member
used on a variable that holds a TensorRT object (``VARIABLES``)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import standins

REPO = Path(__file__).resolve().parent.parent
API = REPO / "tests" / "standins" / "tensorrt" / "api"
SOURCES = [*sorted((REPO / "dudes_ros").rglob("*.py")),
           *sorted((REPO / "benchmarks").glob("*.py"))]
# Names the package gives TensorRT objects (as locals or ``self.`` attributes) -> their class.
VARIABLES = {"builder": "Builder", "network": "INetworkDefinition", "parser": "OnnxParser",
             "config": "IBuilderConfig", "profile": "IOptimizationProfile",
             "engine": "ICudaEngine", "context": "IExecutionContext", "runtime": "Runtime"}
# The calls the backend's design rests on (docs/ARCHITECTURE.md, backends): a strongly typed
# network, no precision flags, USER_MANAGED context memory sized per input shape. Both versions
# must have them, and so must the stand-in.
REQUIRED = ["Logger", "Logger.WARNING", "Builder", "Builder.create_network",
            "Builder.create_builder_config", "Builder.create_optimization_profile",
            "Builder.build_serialized_network", "NetworkDefinitionCreationFlag.STRONGLY_TYPED",
            "OnnxParser", "OnnxParser.parse_from_file", "OnnxParser.num_errors",
            "OnnxParser.get_error", "IBuilderConfig.set_memory_pool_limit",
            "IBuilderConfig.add_optimization_profile", "IBuilderConfig.progress_monitor",
            "MemoryPoolType.WORKSPACE", "IOptimizationProfile.set_shape", "IProgressMonitor",
            "Runtime", "Runtime.deserialize_cuda_engine", "ICudaEngine.num_io_tensors",
            "ICudaEngine.get_tensor_name", "ICudaEngine.get_tensor_dtype",
            "ICudaEngine.create_execution_context", "ICudaEngine.device_memory_size_v2",
            "ExecutionContextAllocationStrategy.STATIC",
            "ExecutionContextAllocationStrategy.ON_PROFILE_CHANGE",
            "ExecutionContextAllocationStrategy.USER_MANAGED",
            "IExecutionContext.set_input_shape",
            "IExecutionContext.update_device_memory_size_for_shapes",
            "IExecutionContext.set_device_memory", "IExecutionContext.set_tensor_address",
            "IExecutionContext.execute_async_v3", "nptype"]


def surface(version: str) -> frozenset[str]:
    return frozenset(line for line in (API / f"{version}.txt").read_text().splitlines()
                     if line and not line.startswith("#"))


SURFACES = {version: surface(version) for version in standins.VERSIONS}


def used_names(path: Path) -> set[str]:
    """Qualified TensorRT names used in ``path``: ``BuilderFlag.FP16`` for
    ``trt.BuilderFlag.FP16``, ``IExecutionContext.set_device_memory`` for
    ``self.context.set_device_memory``."""
    tree = ast.parse(path.read_text(), str(path))
    modules = {"trt"} | {alias.asname or alias.name for node in ast.walk(tree)
                         if isinstance(node, ast.Import) for alias in node.names
                         if alias.name == "tensorrt"}
    if not any(isinstance(n, ast.Name) and n.id in modules for n in ast.walk(tree)):
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        chain, base = [node.attr], node.value
        while isinstance(base, ast.Attribute):
            chain.insert(0, base.attr)
            base = base.value
        if isinstance(base, ast.Name) and base.id in modules:
            found.update(".".join(chain[:i]) for i in range(1, len(chain) + 1))
        elif isinstance(base, ast.Name) and base.id in VARIABLES and len(chain) == 1:
            found.add(f"{VARIABLES[base.id]}.{chain[0]}")
        elif (isinstance(base, ast.Name) and base.id == "self" and len(chain) == 2
              and chain[0] in VARIABLES):
            found.add(f"{VARIABLES[chain[0]]}.{chain[1]}")
    return {name for name in found if not name.split(".")[-1].startswith("_")}


def test_surfaces_hold_what_is_known_of_each_version():
    v10, v11 = (SURFACES[v] for v in standins.VERSIONS)
    gone_in_11 = {"BuilderFlag.FP16", "BuilderFlag.INT8", "IInt8EntropyCalibrator2",
                  "IBuilderConfig.int8_calibrator", "IBuilderConfig.set_calibration_profile",
                  "NetworkDefinitionCreationFlag.EXPLICIT_BATCH"}
    assert gone_in_11 <= v10 and not gone_in_11 & v11
    # "INT8" exists in 10.13's binary only as the tail of "UINT8", and "STATIC" in 11.4's only
    # as the tail of a longer string: a whole-string reading of the .so would miss both.
    assert {"DataType.INT8", "DataType.UINT8"} <= v10 & v11
    assert set(REQUIRED) <= v10 & v11


def test_every_name_the_package_uses_exists_in_every_version():
    used: dict[str, list[str]] = {}
    for path in SOURCES:
        for name in used_names(path):
            used.setdefault(name, []).append(str(path.relative_to(REPO)))
    assert used, "found no TensorRT use at all: has the backend moved?"
    missing = {f"{name} ({', '.join(where)})": [v for v, names in SURFACES.items()
                                               if name not in names]
               for name, where in used.items() if not all(name in s for s in SURFACES.values())}
    assert not missing, f"names missing from TensorRT versions: {missing}"


def public_surface(module) -> set[str]:
    """Public names of ``module``, its classes and the classes nested in them, qualified the
    way scripts/tensorrt_api_surface.py lists the real module."""
    import inspect

    names: set[str] = set()

    def walk(prefix: str, cls: type, depth: int) -> None:
        for name in (n for n in dir(cls) if not n.startswith("_")):
            names.add(f"{prefix}.{name}")
            value = inspect.getattr_static(cls, name, None)
            if depth and isinstance(value, type) and value is not cls:
                walk(f"{prefix}.{name}", value, depth - 1)

    for name in (n for n in dir(module) if not n.startswith("_")):
        names.add(name)
        value = getattr(module, name)
        if isinstance(value, type):
            walk(name, value, 1)
    return names


def test_standin_offers_only_the_real_names_and_all_the_package_needs(trt_standin, trt_version):
    offered = public_surface(trt_standin)
    assert offered <= SURFACES[trt_version], sorted(offered - SURFACES[trt_version])
    assert set(REQUIRED) <= offered, sorted(set(REQUIRED) - offered)


@pytest.mark.parametrize("version", standins.VERSIONS)
def test_surface_files_are_sorted_identifiers(version):
    lines = [line for line in (API / f"{version}.txt").read_text().splitlines()
             if not line.startswith("#")]
    assert lines == sorted(lines) and len(lines) > 1000
    assert all(part.isidentifier() for line in lines for part in line.split("."))


@pytest.mark.parametrize("version", standins.VERSIONS)
def test_surface_file_is_what_the_script_reads_from_the_wheel(version, tmp_path):
    """Regenerating a committed surface from NVIDIA's wheel gives the same file. Needs
    ``DUDES_TRT_WHEELS``: a folder holding ``<version>/`` (an unzipped
    tensorrt-cu12-bindings wheel) or the ``.whl``; and cc, nm, readelf."""
    wheels = os.environ.get("DUDES_TRT_WHEELS")
    if not wheels:
        pytest.skip("DUDES_TRT_WHEELS (a folder of tensorrt-cu12-bindings wheels) is not set")
    if not all(shutil.which(tool) for tool in ("cc", "nm", "readelf")):
        pytest.skip("needs cc, nm and readelf to link the bindings against stubs")
    candidates = [Path(wheels) / version,
                  *Path(wheels).glob(f"tensorrt_cu12_bindings-{version}-*.whl")]
    wheel = next((c for c in candidates if c.exists()), None)
    if wheel is None:
        pytest.skip(f"no {version} wheel under {wheels}")
    out = tmp_path / f"{version}.txt"
    subprocess.run([sys.executable, str(REPO / "scripts" / "tensorrt_api_surface.py"), version,
                    "--wheel", str(wheel), "--out", str(out)], check=True, timeout=300)
    assert out.read_text() == (API / f"{version}.txt").read_text()
