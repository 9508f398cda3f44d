"""The ROS-free perception core shared by the node and by bag processing.

``PerceptionCore.process`` takes the latest frame of each camera, runs the predictor with one
batch per input resolution, and turns labels and uncertainty into everything the node
publishes: the confidence image, the frame OOD score and the debounced alarm (one
``Hysteresis`` per camera). Because the node and ``dudes process-bag`` both call it, their
outputs agree frame for frame.
"""

from __future__ import annotations

import functools
import math
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from dudes_ros.config import check
from dudes_ros.inference.predictor import Predictor
from dudes_ros.ood import (
    DEFAULT_CLEAR_AFTER,
    DEFAULT_RAISE_AFTER,
    Hysteresis,
    uncertain_fraction,
)


@dataclass(frozen=True)
class OodConfig:
    """Frame OOD scoring: a pixel is uncertain when u > ``pixel_threshold``; a frame is over
    threshold when its uncertain fraction > ``frame_threshold``; the alarm rises after
    ``raise_after`` consecutive frames over and clears after ``clear_after`` under. A NaN
    threshold is the model manifest's calibrated value: ``from_calibration`` fills it in, and
    ``PerceptionCore`` scores only with both thresholds set."""

    pixel_threshold: float = math.nan
    frame_threshold: float = math.nan
    raise_after: int = DEFAULT_RAISE_AFTER
    clear_after: int = DEFAULT_CLEAR_AFTER

    def __post_init__(self) -> None:
        for name in ("pixel_threshold", "frame_threshold"):
            value = getattr(self, name)
            check(isinstance(value, (int, float)) and (math.isnan(value) or 0.0 <= value <= 1.0),
                  f"ood.{name}", value, "a number in [0, 1], or NaN (.nan in YAML) to use the "
                  "model manifest's calibration")
        for name in ("raise_after", "clear_after"):
            value = getattr(self, name)
            check(isinstance(value, int) and value >= 1, f"ood.{name}", value, "an integer >= 1")

    @property
    def calibrated(self) -> bool:
        """Both thresholds are set (not NaN)."""
        return not (math.isnan(self.pixel_threshold) or math.isnan(self.frame_threshold))

    @classmethod
    def from_calibration(cls, calibration: Mapping[str, Any] | None,
                         **overrides: float | int | None) -> OodConfig:
        """Thresholds from a model manifest's ``"ood"`` section; an override that is not None
        or NaN wins. Raises ``ConfigError`` naming the threshold that neither provides."""
        calibration = calibration or {}
        values: dict[str, Any] = {}
        for name, value in overrides.items():
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                values[name] = value
        for name in ("pixel_threshold", "frame_threshold"):
            if name not in values:
                check(calibration.get(name) is not None, f"ood.{name}", overrides.get(name),
                      "a number in [0, 1]: the model's manifest has no OOD calibration "
                      f"('ood.{name}' is missing or null), so the threshold must be set")
                values[name] = float(calibration[name])
        return cls(**values)

    def calibrated_by(self, calibration: Mapping[str, Any] | None) -> OodConfig:
        """These settings with each NaN threshold taken from ``calibration`` (a manifest's
        ``"ood"`` section); ``ConfigError`` as ``from_calibration``."""
        return OodConfig.from_calibration(calibration, pixel_threshold=self.pixel_threshold,
                                          frame_threshold=self.frame_threshold,
                                          raise_after=self.raise_after,
                                          clear_after=self.clear_after)


@dataclass(frozen=True)
class FrameResult:
    """Everything published for one camera frame. Images are at the output size: the input's,
    scaled by ``PerceptionCore``'s ``output_scale``; the OOD score is always taken at the
    input's resolution, as calibrated."""

    labels: np.ndarray  # uint8 [h, w] trainIds (255 = ignore)
    uncertainty: np.ndarray  # float32 [h, w] in [0, 1]
    ood_score: float  # frame OOD score: fraction of pixels with u > ood.pixel_threshold
    alarm: bool  # debounced alarm state after this frame
    inference_ms: float  # wall time of the predict call that covered this frame
    ood: OodConfig  # the settings this frame was scored with (all of one config)

    @functools.cached_property
    def confidence(self) -> np.ndarray:
        """uint8 [h, w], round(255 * (1 - u)); 255 = certain. Computed on first use, so a
        frame whose confidence image nobody subscribes to never pays for it."""
        return confidence_image(self.uncertainty)


def scale_outputs(labels: np.ndarray, uncertainty: np.ndarray,
                  scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels uint8 [H, W] and u float32 [H, W] at ``scale`` x the size (each side rounded, at
    least 1): labels by nearest neighbour (a class id cannot be averaged), u by area averaging
    (the mean uncertainty of the pixels each output pixel covers)."""
    if scale == 1.0:
        return labels, uncertainty
    h, w = labels.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # OpenCV: (width, height)
    return (cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST),
            cv2.resize(uncertainty, size, interpolation=cv2.INTER_AREA))


def confidence_image(uncertainty: np.ndarray) -> np.ndarray:
    """``uint8 [H, W]`` = round(255 * (1 - u)) from ``float32 [H, W]`` u (clipped to [0, 1]).

    OpenCV's weighted sum into ``uint8`` does the scale, the rounding (half to even, as
    ``np.rint``) and the clip to [0, 255] in one pass over u, where numpy needs several.
    """
    u = np.asarray(uncertainty, dtype=np.float32)
    return cv2.addWeighted(u, -255.0, u, 0.0, 255.0, dtype=cv2.CV_8U)


class PerceptionCore:
    """Predictor + OOD scoring for a fixed set of cameras (``[""]`` for a single camera).

    OOD settings change at run time by swapping in one frozen ``OodConfig`` (``set_ood``, from
    any thread); ``process`` reads the reference once per call, so every frame of a call is
    scored and debounced entirely with the old or entirely with the new settings.
    """

    def __init__(self, predictor: Predictor, ood: OodConfig, cameras: list[str],
                 output_scale: float = 1.0) -> None:
        if not cameras or len(set(cameras)) != len(cameras):
            raise ValueError(f"cameras must be a non-empty list of distinct names, got {cameras}")
        if not 0.0 < output_scale <= 1.0:
            raise ValueError(f"output_scale must be in (0, 1], got {output_scale}")
        _require_calibrated(ood)
        self.output_scale = output_scale
        self.predictor = predictor
        self.cameras = list(cameras)
        self._ood = ood
        self._alarms = {c: Hysteresis(ood.frame_threshold, ood.raise_after, ood.clear_after)
                        for c in self.cameras}
        self._alarms_ood = ood  # the config the hysteresis settings were last taken from

    @property
    def ood(self) -> OodConfig:
        return self._ood

    def set_ood(self, ood: OodConfig) -> None:
        """Swap in new OOD settings; the next ``process`` call applies them all at once
        (debounce counters restart there, alarm states persist)."""
        if not isinstance(ood, OodConfig):
            raise TypeError(f"set_ood expects an OodConfig, got {type(ood).__name__}")
        _require_calibrated(ood)
        self._ood = ood  # one reference assignment: atomic for the worker reading it

    def update_ood(self, **changes: float | int) -> None:
        self.set_ood(replace(self._ood, **changes))

    def reset(self) -> None:
        """Clear every camera's alarm (e.g. after the stream was interrupted)."""
        for hysteresis in self._alarms.values():
            hysteresis.reset()

    def process(self, frames: Mapping[str, np.ndarray]) -> dict[str, FrameResult]:
        """Run one step on ``{camera: RGB uint8 [H, W, 3]}`` (any subset of the cameras).

        Frames of the same resolution share one ``predict`` call (batched in camera order),
        split into batches of at most ``predictor.max_batch`` frames; each distinct resolution
        is a separate call.
        """
        ood = self._ood  # read once: this call's frames all use this config
        if ood != self._alarms_ood:  # by value: re-setting the same values keeps the counts
            self._apply_to_alarms(ood)
        unknown = sorted(set(frames) - set(self.cameras))
        if unknown:
            raise ValueError(f"unknown camera(s) {unknown}; configured cameras: {self.cameras}")
        groups: dict[tuple[int, ...], list[str]] = defaultdict(list)
        for camera in self.cameras:
            if camera in frames:
                image = frames[camera]
                if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                    raise ValueError(f"camera {camera!r}: expected RGB uint8 [H, W, 3], got "
                                     f"{image.dtype} {image.shape}")
                groups[image.shape].append(camera)
        results: dict[str, FrameResult] = {}
        limit = self.predictor.max_batch or len(self.cameras)
        chunks = [cams[i:i + limit] for cams in groups.values()
                  for i in range(0, len(cams), limit)]
        for cameras in chunks:
            batch = (frames[cameras[0]][None] if len(cameras) == 1
                     else np.stack([frames[c] for c in cameras]))
            start = time.perf_counter()
            labels, uncertainty = self.predictor.predict(batch)
            inference_ms = (time.perf_counter() - start) * 1e3
            for i, camera in enumerate(cameras):
                results[camera] = self._score(camera, labels[i], uncertainty[i], inference_ms,
                                              ood)
        return {c: results[c] for c in self.cameras if c in results}

    def _apply_to_alarms(self, ood: OodConfig) -> None:
        for hysteresis in self._alarms.values():
            hysteresis.threshold = ood.frame_threshold
            hysteresis.raise_after = ood.raise_after
            hysteresis.clear_after = ood.clear_after
            hysteresis.restart_count()
        self._alarms_ood = ood

    def _score(self, camera: str, labels: np.ndarray, uncertainty: np.ndarray,
               inference_ms: float, ood: OodConfig) -> FrameResult:
        uncertainty = np.asarray(uncertainty, dtype=np.float32)
        score = uncertain_fraction(uncertainty, ood.pixel_threshold)
        alarm = self._alarms[camera].update(score)
        labels, uncertainty = scale_outputs(np.asarray(labels, dtype=np.uint8), uncertainty,
                                            self.output_scale)
        return FrameResult(labels=labels, uncertainty=uncertainty, ood_score=score,
                           alarm=alarm, inference_ms=inference_ms, ood=ood)


def _require_calibrated(ood: OodConfig) -> None:
    # u > NaN is never true: scoring with a NaN threshold would silently never alarm.
    if not ood.calibrated:
        raise ValueError(f"OOD thresholds must be set before scoring, got {ood}; "
                         "OodConfig.calibrated_by(the manifest's calibration) fills them in")
