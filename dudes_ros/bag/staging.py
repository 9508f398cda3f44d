"""All-or-nothing output directories: build in a sibling staging folder, rename on success."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def staging_dir(destination: Path) -> Path:
    """The sibling folder a run builds ``destination`` in: ``<name>.partial-<pid>``."""
    return destination.parent / f"{destination.name}.partial-{os.getpid()}"


def check_destination(destination: Path, overwrite: bool) -> None:
    """Refuse an existing ``destination`` unless ``overwrite``, and one that cannot be created
    because its nearest existing ancestor is a file or not writable (checked before any work).
    """
    destination = Path(destination)
    if destination.exists() and not overwrite:
        raise FileExistsError(f"{destination} exists already; pass --overwrite to replace it")
    ancestor = destination.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(f"cannot create {destination}: {ancestor} is a file, not a "
                                 "folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot create {destination}: folder {ancestor} is not writable")


@contextmanager
def staged_output(destination: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a not-yet-existing path to build ``destination`` at; move it there on success.

    The path lies inside a sibling staging folder (same filesystem, so the final move is a
    rename). Any exception, KeyboardInterrupt included, removes the staging folder and leaves
    ``destination`` untouched. With ``overwrite`` an existing ``destination`` is moved into the
    staging folder first and deleted with it after the new one is in place.
    """
    destination = Path(destination)
    check_destination(destination, overwrite)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(destination)
    shutil.rmtree(staging, ignore_errors=True)  # debris of a killed run that had our pid
    staging.mkdir()
    try:
        built = staging / destination.name
        yield built
        if not built.exists():
            raise RuntimeError(f"nothing was written for {destination}")
        check_destination(destination, overwrite)  # someone may have created it meanwhile
        if destination.exists():
            os.replace(destination, staging / f"{destination.name}.replaced")
        os.replace(built, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
