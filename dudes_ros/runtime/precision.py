"""Precision variants of the deploy-graph ONNX: fp32 (the export), fp16, int8 with explicit Q/DQ.

TensorRT 11 builds only strongly typed networks: an engine runs each tensor in the type the ONNX
gives it, and the FP16/INT8 builder flags and implicit INT8 calibration are gone (TensorRT 10
still has them, deprecated). So the precision is made here, in the ONNX, on the CPU, and the same
file builds on TensorRT 10 and 11; every variant can also be evaluated with ONNX Runtime before a
GPU sees it.

- **fp16**: ONNX Runtime's ``float16`` converter (part of the onnxruntime wheel: no new
  dependency), image input and both outputs kept in their types. Kept in fp32 (``FP32_OPS``):
  the in-graph ``Resize`` ops, whose full-resolution logits decide the argmax between close
  classes, and the uncertainty head's ``Sigmoid`` (u is thresholded at small values).
- **int8**: ONNX Runtime's ``quantize_static`` in QDQ format, the form TensorRT's explicit
  quantization reads: signed int8, symmetric (zero point 0) activations per tensor and weights
  per output channel, biases left in float, Q/DQ only around ``Conv`` (TensorRT fuses Q/DQ into
  its int8 convolutions; the resizes, argmax and the uncertainty head stay float). Scales come
  from post-training calibration on in-domain images, every image of the folder used, one at a
  time at its own size. NVIDIA's Model Optimizer would do the same but pulls in torch and
  CUDA-specific wheels; ONNX Runtime is already a runtime dependency.

Variants are cached beside the engines: ``<cache>/<stem>.<precision>.<key digest>.onnx`` plus
its manifest (the source's, with the variant's sha256 and a ``precision`` section), written
atomically under a file lock, so ``dudes evaluate``, ``dudes calibrate`` and every backend take a
variant like any exported model.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from filelock import FileLock

from dudes_ros.files import IMAGE_SUFFIXES, staged
from dudes_ros.runtime.manifest import check_onnx_file, sha256_file, write_manifest

LOG = logging.getLogger(__name__)
PRECISIONS = ("fp16", "fp32", "int8")
FP32_OPS = ["Resize", "Sigmoid"]
QUANTIZED_OPS = ["Conv"]
FEW_CALIBRATION_IMAGES = 32  # fewer than this: int8 scales rest on little data (warned)
RECIPES = {
    "fp16": {"tool": "onnxruntime.transformers.float16.convert_float_to_float16",
             "keep_io_types": True, "fp32_ops": FP32_OPS},
    "int8": {"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ",
             "activations": "int8 symmetric per tensor", "weights": "int8 symmetric per channel",
             "quantized_ops": QUANTIZED_OPS, "calibration": "Percentile 99.999",
             "bias": "float"},
}
CalibrationProgress = Callable[[int, int], None]
"""``progress(done, total)`` over the calibration images: 0 before the first, -1 after."""


class VariantError(ValueError):
    """A precision variant cannot be made; the message says why and what is needed."""


@dataclass(frozen=True)
class Variant:
    """A deploy-graph ONNX of one precision. ``sha256`` is the variant file's digest (what a
    TensorRT engine is keyed on); ``calibration`` identifies the int8 calibration set."""

    path: Path
    precision: str
    sha256: str
    source_sha256: str
    calibration: str = ""


def calibration_images(folder: str | Path) -> list[Path]:
    """Image files (png, jpg, bmp) under ``folder``, sorted, recursively."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VariantError(f"int8 calibration folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise VariantError(f"int8 calibration folder {folder} holds no {IMAGE_SUFFIXES} images")
    return files


def calibration_id(files: list[Path]) -> str:
    """Identifies a calibration set: count + digest of names and contents (a re-exported image
    of the same name is a different set)."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.name}:{sha256_file(f)}\n".encode())
    return f"{len(files)} images, sha256 {digest.hexdigest()[:16]}"


def load_rgb(path: Path) -> np.ndarray:
    """An image file as RGB ``uint8 [H, W, 3]`` at its own size (the graph resizes)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise VariantError(f"calibration image {path} cannot be decoded")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _need_onnx(precision: str) -> None:
    import importlib.util

    if importlib.util.find_spec("onnx") is None:
        raise VariantError(f"making the {precision} variant needs the onnx package, which is "
                           "not installed: pip install onnx (it comes with the "
                           "dudes_ros[tensorrt-cu12] / [tensorrt-cu13] extras)")


def make_fp16(source: Path, target: Path) -> None:
    """Write the fp16 variant of ``source`` (fp32 deploy graph) to ``target``."""
    _need_onnx("fp16")
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True,
                                     op_block_list=FP32_OPS)
    onnx.save(model, str(target))


class _Reader:
    """ONNX Runtime's ``CalibrationDataReader`` protocol over image files, one image per batch,
    so every image is used whatever the engine's batch size (``get_next`` -> feed or None)."""

    def __init__(self, files: list[Path], progress: CalibrationProgress | None) -> None:
        self.files, self.progress = files, progress
        self.images: Iterator[Path] = iter(files)
        self.done = 0

    def get_next(self) -> dict | None:
        path = next(self.images, None)
        if path is None:
            return None
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, len(self.files))
        return {"image": load_rgb(path)[None]}


def make_int8(source: Path, target: Path, files: list[Path],
              progress: CalibrationProgress | None = None) -> int:
    """Write the int8 Q/DQ variant of ``source`` to ``target``, calibrated on ``files``;
    returns how many images were fed (always ``len(files)``)."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    _need_onnx("int8")
    if not files:
        raise VariantError("int8 calibration needs at least one image")
    if len(files) < FEW_CALIBRATION_IMAGES:
        LOG.warning("int8 calibration on %d image(s) only: scales from so few frames may clip "
                    "real scenes; %d or more in-domain frames are advised", len(files),
                    FEW_CALIBRATION_IMAGES)
    reader = _Reader(files, progress)
    if progress is not None:
        progress(0, len(files))
    quantize_static(str(source), str(target), reader, quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=QUANTIZED_OPS, per_channel=True, reduce_range=False,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.Percentile,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                   "QuantizeBias": False, "CalibPercentile": 99.999})
    if progress is not None:
        progress(-1, len(files))
    if reader.done != len(files):
        raise VariantError(f"int8 calibration used {reader.done} of {len(files)} images")
    return reader.done


def variant_path(cache_dir: Path, onnx_path: Path, precision: str, source_sha256: str,
                 calibration: str) -> Path:
    """Where the variant of ``onnx_path`` for ``precision`` (and int8 calibration set) lies."""
    key = json.dumps([source_sha256, precision, calibration, RECIPES.get(precision)])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{Path(onnx_path).stem}.{precision}.{digest}.onnx"


def ensure_variant(onnx_path: str | Path, precision: str, cache_dir: str | Path,
                   calibration_folder: str | Path | None = None,
                   progress: CalibrationProgress | None = None) -> Variant:
    """The ``precision`` variant of the deploy graph ``onnx_path``: the file itself for fp32,
    else from ``cache_dir`` when already made there, else made now (int8 needs
    ``calibration_folder``). Raises ``VariantError`` naming what is missing."""
    if precision not in PRECISIONS:
        raise VariantError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    onnx_path = Path(onnx_path)
    manifest, source_sha = check_onnx_file(onnx_path)
    if precision == "fp32":
        return Variant(onnx_path, precision, source_sha, source_sha)
    files: list[Path] = []
    calibration = ""
    if precision == "int8":
        if not calibration_folder:
            raise VariantError("precision int8 needs calibration images of the deployment "
                               "domain (engine.calibration_folder / --calibration-folder)")
        files = calibration_images(calibration_folder)
        calibration = calibration_id(files)
    target = variant_path(Path(cache_dir), onnx_path, precision, source_sha, calibration)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.is_file():
            try:
                _, digest = check_onnx_file(target)
                return Variant(target, precision, digest, source_sha, calibration)
            except ValueError as exc:  # ManifestError: half a variant from another version
                LOG.warning("remaking %s: %s", target.name, exc)
        LOG.info("making the %s variant of %s (%s)", precision, onnx_path.name,
                 calibration or "no calibration")
        with staged(target) as tmp:
            if precision == "fp16":
                make_fp16(onnx_path, tmp)
            else:
                make_int8(onnx_path, tmp, files, progress)
            _check_tensorrt_types(tmp)
            digest = sha256_file(tmp)
        variant_manifest = copy.deepcopy(manifest)
        variant_manifest["model_name"] = f"{manifest['model_name']}.{precision}"
        variant_manifest["onnx_sha256"] = digest
        variant_manifest["precision"] = {"precision": precision, "source": onnx_path.name,
                                         "source_onnx_sha256": source_sha,
                                         "calibration": calibration,
                                         "recipe": RECIPES[precision]}
        write_manifest(target, variant_manifest)
    return Variant(target, precision, digest, source_sha, calibration)


def _check_tensorrt_types(path: Path) -> None:
    from dudes_ros.runtime.onnx_rules import tensorrt_type_problems

    problems = tensorrt_type_problems(path)
    if problems:
        raise VariantError(f"the variant {path.name} would not parse in TensorRT: "
                           + "; ".join(problems))
