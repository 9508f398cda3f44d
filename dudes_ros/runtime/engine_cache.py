"""The TensorRT engine cache: key, manifest, rebuild decision, atomic write under a file lock.

An engine is only valid for the exact ONNX variant, TensorRT version, GPU model, compute
capability, precision, shape profile and INT8 calibration it was built with: that is its
``EngineKey``, and the file name carries the key's digest (``engine_name``). Each cached engine
``<name>.engine`` has a JSON manifest ``<name>.engine.json`` holding the key and the engine's
sha256. ``EngineCache.load`` takes the engine's file lock (so several camera nodes sharing one
cache build it once), checks the manifest against the wanted key, deserialises, and rebuilds on any
mismatch, missing or corrupt file, or deserialisation failure, logging why. New engines are written
to a temporary file and renamed into place, so a reader never sees half an engine.

Nothing here imports TensorRT: the builder and the deserialiser are injected, which is how the
tests exercise every branch without a GPU.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Generic, TypeVar

from filelock import FileLock

from dudes_ros.files import atomic_write_bytes

LOG = logging.getLogger(__name__)
EngineT = TypeVar("EngineT")
MANIFEST_FORMAT = "dudes_ros.engine/1"

Progress = Callable[[str, int, int], None]
"""``progress(phase, step, total)``: build progress; total 0 when unknown."""
EngineBuilder = Callable[[Path, "EngineKey", Progress], bytes]
"""``builder(onnx_path, key, progress) -> serialised engine bytes``."""


class EngineBuildError(RuntimeError):
    """The builder failed, or produced an engine that cannot be deserialised."""


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on. ``onnx_sha256`` is the precision variant's digest;
    ``profile`` maps "min"/"opt"/"max" to the input shape ``[B, H, W, 3]``; ``calibration``
    identifies the INT8 calibration data (else "")."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    profile: dict
    calibration: str = ""

    def __post_init__(self) -> None:
        if sorted(self.profile) != ["max", "min", "opt"]:
            raise ValueError(f"profile needs exactly 'min', 'opt' and 'max' shapes, "
                             f"got {sorted(self.profile)}")

    def as_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))  # tuples -> lists, as stored in JSON

    def digest(self) -> str:
        """sha256 of the key's canonical JSON (names the engine file)."""
        return _sha256(json.dumps(self.as_dict(), sort_keys=True).encode())

    def mismatches(self, stored: dict) -> list[str]:
        """Human-readable differences between this key and a stored key dict."""
        wanted = self.as_dict()
        return [f"{name}: cached {stored.get(name)!r}, wanted {value!r}"
                for name, value in wanted.items() if stored.get(name) != value]


def engine_name(onnx_path: Path, key: EngineKey) -> str:
    """File stem of a cached engine: readable settings (model, precision, largest batch, GPU)
    and a digest of the whole key, so engines of different settings (profile, TensorRT
    version, ONNX, calibration) coexist in one folder instead of replacing each other."""
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", key.gpu_name).strip("-").lower() or "gpu"
    cc = key.compute_capability.replace(".", "")
    return (f"{onnx_path.stem}.{key.precision}.b{key.profile['max'][0]}.{gpu}-sm{cc}."
            f"{key.digest()[:12]}")


@dataclass(frozen=True)
class CacheOutcome:
    """What ``EngineCache.load`` did: ``built`` False means a cache hit; ``reason`` says why
    it (re)built; ``build_seconds`` is 0 for a hit."""

    engine_path: Path
    built: bool
    reason: str
    build_seconds: float


@dataclass(frozen=True)
class LoadedEngine(Generic[EngineT]):
    engine: EngineT
    outcome: CacheOutcome


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class EngineCache:
    """A folder of engines, each with its manifest and lock file.

    ``builder(onnx_path, key, progress) -> bytes`` builds a serialised engine;
    ``deserialize(bytes) -> engine`` loads one and raises (or returns None) on failure.
    ``lock_timeout`` bounds the wait for another process's build (seconds; -1 = forever).
    """

    def __init__(self, directory: str | Path, builder: EngineBuilder,
                 deserialize: Callable[[bytes], EngineT | None], lock_timeout: float = -1) -> None:
        self.directory = Path(directory)
        self.builder = builder
        self.deserialize = deserialize
        self.lock_timeout = lock_timeout

    def paths(self, onnx_path: Path, key: EngineKey) -> tuple[Path, Path, Path]:
        """(engine, manifest, lock) paths for this model and key."""
        stem = self.directory / engine_name(Path(onnx_path), key)
        return (stem.with_name(stem.name + ".engine"), stem.with_name(stem.name + ".engine.json"),
                stem.with_name(stem.name + ".engine.lock"))

    def lookup(self, onnx_path: Path, key: EngineKey) -> tuple[bytes | None, str]:
        """The cached engine's bytes when its manifest matches ``key``, else None and the
        reason it cannot be used."""
        engine_path, manifest_path, _ = self.paths(onnx_path, key)
        if not engine_path.is_file():
            return None, f"no cached engine at {engine_path}"
        if not manifest_path.is_file():
            return None, f"cached engine {engine_path.name} has no manifest {manifest_path.name}"
        try:
            manifest = json.loads(manifest_path.read_text())
            stored_key = manifest["key"]
            stored_sha = manifest["engine_sha256"]
            if manifest.get("format") != MANIFEST_FORMAT or not isinstance(stored_key, dict):
                raise ValueError(f"format {manifest.get('format')!r}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f"engine manifest {manifest_path.name} is unreadable ({exc})"
        diff = key.mismatches(stored_key)
        if diff:
            return None, "key mismatch: " + "; ".join(diff)
        data = engine_path.read_bytes()
        if _sha256(data) != stored_sha:
            return None, (f"engine file {engine_path.name} does not match its manifest's sha256 "
                          "(corrupt or replaced)")
        return data, "cache hit"

    def load(self, onnx_path: str | Path, key: EngineKey,
             progress: Progress | None = None) -> LoadedEngine[EngineT]:
        """The engine for ``key``: from the cache when valid, else built, cached and loaded."""
        onnx_path = Path(onnx_path)
        engine_path, manifest_path, lock_path = self.paths(onnx_path, key)
        self.directory.mkdir(parents=True, exist_ok=True)
        with FileLock(str(lock_path), timeout=self.lock_timeout):
            data, reason = self.lookup(onnx_path, key)
            if data is not None:
                engine = self._try_deserialize(data)
                if engine is not None:
                    LOG.info("engine cache hit: %s", engine_path)
                    return LoadedEngine(engine, CacheOutcome(engine_path, False, reason, 0.0))
                reason = f"cached engine {engine_path.name} failed to deserialise"
            LOG.warning("building TensorRT engine %s: %s (first builds take minutes)",
                        engine_path.name, reason)
            start = time.monotonic()
            data = self.builder(onnx_path, key, progress or _log_progress)
            seconds = time.monotonic() - start
            engine = self._try_deserialize(data)
            if engine is None:
                raise EngineBuildError(f"the engine just built from {onnx_path} cannot be "
                                       "deserialised")
            atomic_write_bytes(engine_path, data)
            manifest = {
                "format": MANIFEST_FORMAT, "key": key.as_dict(), "engine_sha256": _sha256(data),
                "onnx": str(onnx_path), "build_seconds": round(seconds, 3),
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"),
            }
            atomic_write_bytes(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())
            LOG.info("built %s in %.1f s", engine_path, seconds)
            return LoadedEngine(engine, CacheOutcome(engine_path, True, reason, seconds))

    def _try_deserialize(self, data: bytes) -> EngineT | None:
        try:
            return self.deserialize(data)
        except Exception as exc:  # noqa: BLE001 - any failure means "rebuild"
            LOG.warning("engine deserialisation failed: %s", exc)
            return None


def _log_progress(phase: str, step: int, total: int) -> None:
    LOG.info("engine build: %s %d/%s", phase, step, total or "?")
