"""Put the test stand-ins of ``tensorrt`` and ``cuda`` (cuda-python) on the import path, for
this process (``standins`` fixture) and for node subprocesses (``standin_env``)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

STANDINS = Path(__file__).resolve().parent.parent / "standins"


def standin_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the stand-ins first on PYTHONPATH."""
    paths = [str(STANDINS), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}


def _forget() -> None:
    for name in [m for m in sys.modules if m in ("tensorrt", "cuda") or
                 m.startswith(("tensorrt.", "cuda."))]:
        del sys.modules[name]


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """Import ``tensorrt`` and ``cuda`` from the stand-ins inside the block; afterwards they
    are forgotten again (``sys.path`` and ``sys.modules``), so no other test sees them."""
    _forget()
    sys.path.insert(0, str(STANDINS))
    try:
        yield
    finally:
        sys.path.remove(str(STANDINS))
        _forget()


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
