"""Put the test stand-ins of ``tensorrt`` and ``cuda`` (cuda-python) on the import path, for
this process (``installed``) and for node subprocesses (``standin_env``), playing one TensorRT
version (``VERSIONS``; the stand-in reads ``DUDES_TRT_STANDIN_VERSION`` when it is imported)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

STANDINS = Path(__file__).resolve().parent.parent / "standins"
VERSION_ENV = "DUDES_TRT_STANDIN_VERSION"
VERSIONS = ("10.13.0.35", "11.4.0.106")  # every version with a committed API surface
DEFAULT_VERSION = "11.4.0.106"


def _check(version: str) -> str:
    if version not in VERSIONS:
        raise ValueError(f"TensorRT stand-in version {version!r}: expected one of {VERSIONS}")
    return version


def standin_env(env: dict[str, str], version: str = DEFAULT_VERSION) -> dict[str, str]:
    """``env`` with the stand-ins first on PYTHONPATH, playing TensorRT ``version``."""
    paths = [str(STANDINS), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return {**env, "PYTHONPATH": os.pathsep.join(paths), VERSION_ENV: _check(version)}


def _forget() -> None:
    for name in [m for m in sys.modules if m in ("tensorrt", "cuda") or
                 m.startswith(("tensorrt.", "cuda."))]:
        del sys.modules[name]


@contextlib.contextmanager
def installed(version: str = DEFAULT_VERSION) -> Iterator[None]:
    """Import ``tensorrt`` (playing ``version``) and ``cuda`` from the stand-ins inside the
    block; afterwards they are forgotten again (``sys.path``, ``sys.modules`` and the version
    variable), so no other test sees them. Subprocesses started inside the block inherit the
    version, not the path: give them ``standin_env``."""
    saved = os.environ.get(VERSION_ENV)
    os.environ[VERSION_ENV] = _check(version)
    _forget()
    sys.path.insert(0, str(STANDINS))
    try:
        yield
    finally:
        sys.path.remove(str(STANDINS))
        _forget()
        if saved is None:
            os.environ.pop(VERSION_ENV, None)
        else:
            os.environ[VERSION_ENV] = saved


def importable_outside(name: str) -> bool:
    """Whether ``name`` is importable without the stand-ins (a real install)."""
    import importlib.util

    saved = [p for p in sys.path if Path(p).resolve() == STANDINS]
    for p in saved:
        sys.path.remove(p)
    try:
        return importlib.util.find_spec(name) is not None
    finally:
        sys.path[:0] = saved
