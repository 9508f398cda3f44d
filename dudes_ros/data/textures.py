"""Image-space finishing of synthetic scenes: surface textures, shadows, haze, light, noise.

The rasteriser (:mod:`dudes_ros.data.street`) paints flat colours; this module turns them into
something camera-like with a few whole-image numpy/OpenCV passes, so a 512x1024 frame stays
cheap. Textures are driven by per-trainId amplitude tables, so every class has its own
statistics while some classes overlap (road vs. sidewalk vs. building greys, vegetation vs.
terrain greens) the way real street scenes do.
"""

from __future__ import annotations

import cv2
import numpy as np

from dudes_ros.labels import IGNORE_INDEX, NAME_TO_TRAIN_ID

GROUND_CLASSES = ("road", "sidewalk", "terrain")


def _lut(values: dict[str, float], default: float = 0.0) -> np.ndarray:
    lut = np.full(256, default, dtype=np.float32)
    for name, value in values.items():
        lut[NAME_TO_TRAIN_ID[name]] = value
    return lut


# Per-class amplitude of fine grain (pixel noise) and of blotches (low-frequency noise).
GRAIN = _lut({"road": 0.10, "sidewalk": 0.07, "building": 0.05, "wall": 0.08, "fence": 0.06,
              "pole": 0.03, "vegetation": 0.28, "terrain": 0.22, "sky": 0.01, "person": 0.05,
              "car": 0.03, "truck": 0.04, "bus": 0.03, "traffic sign": 0.03,
              "traffic light": 0.03}, default=0.04)
BLOTCH = _lut({"road": 0.12, "sidewalk": 0.10, "building": 0.10, "wall": 0.12, "fence": 0.05,
               "vegetation": 0.35, "terrain": 0.25, "sky": 0.07, "car": 0.02,
               "truck": 0.05, "bus": 0.04}, default=0.03)
IS_GROUND = np.zeros(256, dtype=bool)
for _name in GROUND_CLASSES:
    IS_GROUND[NAME_TO_TRAIN_ID[_name]] = True
IS_GROUND[IGNORE_INDEX] = False


def value_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth noise ``float32 [H, W]`` with about unit variance and ``cells`` features across
    the shorter side (a random grid upsampled bicubically; no library offers seeded 2-D noise
    as cheaply)."""
    h, w = shape
    gh = max(2, round(cells * h / min(h, w)) + 1)
    gw = max(2, round(cells * w / min(h, w)) + 1)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def surface_noise(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """``(grain, blotch)`` fields ``float32 [H, W]``: per-pixel grain and 2-octave blotches."""
    grain = rng.standard_normal(shape, dtype=np.float32)
    blotch = 0.7 * value_noise(rng, shape, 6) + 0.4 * value_noise(rng, shape, 24)
    return grain, blotch


def finish(image: np.ndarray, labels: np.ndarray, shade: np.ndarray,
           grain: np.ndarray, blotch: np.ndarray, *, ground_haze: np.ndarray,
           haze_rgb: np.ndarray, gain: float, tint: np.ndarray,
           blur_sigma: float) -> np.ndarray:
    """Texture, shadows, ground haze, light and optics of a flat-colour frame.

    image uint8 [H, W, 3] flat colours; labels uint8 [H, W] trainIds; shade float32 [H, W]
    (shadow factor, used on ground classes only); grain/blotch float32 [H, W];
    ground_haze float32 [H] (per-row fraction of haze on the ground plane); haze_rgb and tint
    float [3]. Returns float32 [H, W, 3] in 0..255 (before sensor noise).
    """
    factor = 1.0 + GRAIN[labels] * grain + BLOTCH[labels] * blotch
    ground = IS_GROUND[labels]
    factor = np.where(ground, factor * shade, factor)
    out = image.astype(np.float32) * factor[..., None]
    haze = np.where(ground, ground_haze[:, None], np.float32(0.0))[..., None]
    out += haze * (haze_rgb.astype(np.float32) - out)
    out *= (gain * tint).astype(np.float32)
    if blur_sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur_sigma)
    return out


def add_sensor_noise(image: np.ndarray, noise: np.ndarray, sigma: float) -> np.ndarray:
    """float32 [H, W, 3] + luma noise ``sigma * noise`` (float32 [H, W]) -> uint8 [H, W, 3]."""
    out = image + (sigma * noise)[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)
