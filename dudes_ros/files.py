"""Atomic file writes: a temporary file in the target's folder, renamed over the target only
when complete, so a reader (or a crash) never sees half a file and a failed write leaves the
old file as it was. Files get the mode a plain ``open()`` gives (0666 less the umask; 0644
under the usual 022): ``mkstemp``'s 0600 would hide checkpoints and manifests from the other
users and services that load them."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

# Image files the package reads (calibration folders, image-folder drives, anomaly benchmarks):
# what OpenCV's imread decodes in every wheel.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def staged(path: str | Path, sync: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to fill (a library may write it, and the
    block may check it); when the block ends without an error the file is flushed to disk
    (``sync``; off only for data cheap to regenerate), given the usual mode and renamed over
    ``path``; on an error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        if sync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object],
                 sync: bool = True) -> Path:
    """Call ``write(file)`` on a staged file and publish it as ``path`` (see ``staged``)."""
    with staged(path, sync) as tmp, open(tmp, "wb") as f:
        write(f)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes, sync: bool = True) -> Path:
    """``data`` to ``path`` atomically (see ``staged``)."""
    return atomic_write(path, lambda f: f.write(data), sync)
