"""Write the Python API surface of one TensorRT version, from NVIDIA's own bindings wheel.

    python scripts/tensorrt_api_surface.py 11.4.0.106            # pip-downloads the wheel
    python scripts/tensorrt_api_surface.py 10.13.0.35 --wheel DIR_OR_WHL

Output: ``tests/standins/tensorrt/api/<version>.txt``, one qualified name a line, sorted:
``Builder``, ``Builder.build_serialized_network``, ``BuilderFlag.FP16``, ``Logger.Severity``,
``Logger.Severity.WARNING``, ``nptype``... The test stand-in of ``tensorrt`` exposes nothing
outside the file of the version it plays, and tests check every name the package uses against
every committed version.

How the names are read. The wheel's ``tensorrt.so`` cannot be imported without libnvinfer, and
its string table alone is ambiguous: the linker tail-merges strings, so in 10.13 ``"INT8"`` (a
``BuilderFlag`` and a ``DataType`` member) exists only as the tail of ``"UINT8"``, and a bare
``"FP16"`` says nothing about which enum holds it. So this script links the module against stub
libraries that define the handful of functions it imports from libnvinfer, libnvinfer_plugin
and libnvonnxparser (the factory functions; the module's init calls none of them), imports the
real bindings package in a subprocess, and lists ``dir()`` of the module, of every class in it
and of the classes nested in those (``Logger.Severity``): exactly the names pybind11
registered, each under the class that has it. Every leaf name must also occur in the binary (as
a NUL-terminated string or the tail of one) or in the package's ``__init__.py``; the script
fails otherwise. Needs: a C compiler (``cc``), binutils ``nm``, and the Python version the
wheel was built for (cp311 for the committed files).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
API_DIR = REPO / "tests" / "standins" / "tensorrt" / "api"
PACKAGE = "tensorrt_bindings"
# Undefined symbols that Python, libc or the C++ runtime provide, not TensorRT's libraries.
NOT_TENSORRT = re.compile(r"^(_?Py|_ITM_|__|dl|pthread)")

INTROSPECT = r"""
import inspect, json, sys, types
import tensorrt_bindings as trt

names = set()

def public(obj):
    return [n for n in dir(obj) if not n.startswith("_")]

def walk(prefix, cls, depth):
    for name in public(cls):
        names.add(f"{prefix}.{name}")
        value = inspect.getattr_static(cls, name, None)
        if depth and isinstance(value, type) and value is not cls:
            walk(f"{prefix}.{name}", value, depth - 1)

for name in public(trt):
    value = getattr(trt, name)
    if isinstance(value, types.ModuleType):
        continue  # ctypes, os, sys, warnings imported by __init__.py; submodules
    names.add(name)
    if isinstance(value, type):
        walk(name, value, 1)
json.dump({"version": trt.__version__, "names": sorted(names)}, sys.stdout)
"""


def download(version: str, into: Path) -> Path:
    """The ``tensorrt-cu12-bindings==version`` wheel for CPython 3.11, manylinux x86_64."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--python-version",
                    "3.11", "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64",
                    "--dest", str(into), f"tensorrt-cu12-bindings=={version}"], check=True)
    wheels = sorted(into.glob("tensorrt_cu12_bindings-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one tensorrt_cu12_bindings wheel in {into}, got {wheels}")
    return wheels[0]


def unpacked(wheel: Path, into: Path) -> Path:
    """The folder holding ``tensorrt_bindings/`` for a wheel file or an unzipped wheel."""
    if wheel.is_dir():
        root = wheel
    else:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(into)
        root = into
    if not (root / PACKAGE / "tensorrt.so").is_file():
        raise SystemExit(f"{root} holds no {PACKAGE}/tensorrt.so (not a bindings wheel?)")
    return root


def stub_libraries(module: Path, into: Path) -> None:
    """Stub shared libraries, one per ``libnv*`` that ``module`` needs, each defining every
    TensorRT symbol ``module`` leaves undefined as a function returning NULL."""
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(libnv[^\]]+)\]",
                        subprocess.run(["readelf", "-d", str(module)], check=True,
                                       capture_output=True, text=True).stdout)
    undefined = subprocess.run(["nm", "-D", "--undefined-only", "--format=posix", str(module)],
                               check=True, capture_output=True, text=True).stdout
    symbols = sorted({line.split()[0] for line in undefined.splitlines()}
                     - {s for s in undefined.split() if "@" in s or NOT_TENSORRT.match(s)})
    source = into / "stub.c"
    source.write_text("".join(f"void *{s}(void) {{ return 0; }}\n" for s in symbols))
    for library in needed:
        subprocess.run(["cc", "-shared", "-fPIC", "-o", str(into / library), str(source)],
                       check=True)


def surface(root: Path, stubs: Path) -> dict:
    env = {**os.environ, "LD_LIBRARY_PATH": str(stubs), "PYTHONPATH": str(root)}
    result = subprocess.run([sys.executable, "-c", INTROSPECT], env=env, capture_output=True,
                            text=True, cwd=stubs)
    if result.returncode:
        raise SystemExit(f"importing the real bindings failed:\n{result.stderr}")
    return json.loads(result.stdout)


def unexplained(names: list[str], root: Path) -> list[str]:
    """Leaf names found neither in the binary's strings (whole or as a tail) nor in the
    package's Python files: there should be none."""
    binary = (root / PACKAGE / "tensorrt.so").read_bytes()
    python = "".join(p.read_text() for p in (root / PACKAGE).glob("*.py"))
    return [n for n in names if (leaf := n.rsplit(".", 1)[-1]).encode() + b"\0" not in binary
            and leaf not in python]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("version", help="TensorRT version, e.g. 11.4.0.106")
    parser.add_argument("--wheel", type=Path,
                        help="a downloaded .whl or an unzipped wheel folder (default: download)")
    parser.add_argument("--out", type=Path, help="output file (default: "
                        "tests/standins/tensorrt/api/<version>.txt)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wheel = args.wheel or download(args.version, tmp / "download")
        root = unpacked(wheel, tmp / "wheel")
        stubs = tmp / "stubs"
        stubs.mkdir()
        stub_libraries(root / PACKAGE / "tensorrt.so", stubs)
        found = surface(root, stubs)
        missing = unexplained(found["names"], root)
    if found["version"] != args.version:
        raise SystemExit(f"the wheel is TensorRT {found['version']}, not {args.version}")
    if missing:
        raise SystemExit(f"names not in the binary nor its Python files: {missing}")
    out = args.out or API_DIR / f"{args.version}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        f"# TensorRT {args.version} Python API: every public name of the module, of its\n"
        f"# classes and of the classes nested in them (qualified, sorted), read by importing\n"
        f"# NVIDIA's tensorrt-cu12-bindings=={args.version} (cp311, manylinux_2_28_x86_64)\n"
        f"# against stub libraries. Generated by scripts/tensorrt_api_surface.py; do not edit.\n"
        + "".join(f"{name}\n" for name in found["names"]))
    print(f"{len(found['names'])} names -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
