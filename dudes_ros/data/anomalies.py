"""Out-of-distribution objects for synthetic scenes: real photos and unseen procedural textures.

Two kinds of sprite (an RGB patch plus its silhouette), absent from every in-domain scene:

* crops of public-domain photographs bundled with scikit-image (a cat, an espresso cup, a
  rocket on its pad, a horse silhouette covered in cat fur, the colour wheel, coins, the
  scikit-image logo, a stained tissue sample, the Hubble deep field), each cut out with an
  ellipse, a rectangle (a printed crate) or the object's own silhouette;
* procedural shapes (ellipse, star, polygon, crate) painted with colour statistics no street
  class has: saturated checkerboards, rainbow gradients, neon stripes, polka dots.

A sprite is placed upright on the ground by :mod:`dudes_ros.data.synthetic`, scaled by
perspective. Photos come from ``skimage.data`` (installed with scikit-image, no download).

The photos are split in two: a recipe may show its teacher members procedural shapes and the
``EXPOSURE_PHOTOS`` as outliers (kind ``"exposure"``); the ``HELD_OUT_PHOTOS`` never appear in
training, so evaluation and the demo (kind ``"held-out-photo"``) measure unseen objects.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Sprite:
    """An anomaly: ``rgb`` uint8 [h, w, 3], ``alpha`` bool [h, w] (its silhouette), ``name``
    and its real-world height in metres."""

    name: str
    rgb: np.ndarray
    alpha: np.ndarray
    height_m: float

    @property
    def aspect(self) -> float:
        """Width over height."""
        return self.rgb.shape[1] / self.rgb.shape[0]

    def rasterize(self, height_px: int, width_px: int) -> tuple[np.ndarray, np.ndarray]:
        """The sprite at ``height_px`` x ``width_px``: (rgb uint8 [h, w, 3], alpha bool [h, w]).
        The silhouette uses nearest-neighbour scaling so it stays binary."""
        h0, w0 = self.alpha.shape
        smaller = height_px * width_px < h0 * w0
        rgb = cv2.resize(self.rgb, (width_px, height_px),
                         interpolation=cv2.INTER_AREA if smaller else cv2.INTER_LINEAR)
        alpha = cv2.resize(self.alpha.view(np.uint8), (width_px, height_px),
                           interpolation=cv2.INTER_NEAREST).astype(bool)
        return rgb, alpha


def _ellipse(h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), dtype=np.uint8)
    cv2.ellipse(mask, (w // 2, h // 2), (max(1, w // 2 - 1), max(1, h // 2 - 1)), 0, 0, 360, 1,
                -1)
    return mask.astype(bool)


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.stack([image] * 3, -1) if image.ndim == 2 else image[..., :3])


@functools.cache
def photo_sprites() -> tuple[Sprite, ...]:
    """Cut-outs of the scikit-image sample photos (loaded once; all ship with scikit-image)."""
    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("photo anomalies need scikit-image (pip install scikit-image); "
                          "its bundled sample photos are the anomaly sources") from exc
    cat = data.chelsea()
    horse = ~data.horse()
    fur = cv2.resize(cat[40:260, 180:440], (horse.shape[1], horse.shape[0]))
    crops = [
        ("cat", cat[0:300, 0:330], None, 0.6),
        ("espresso", data.coffee()[20:390, 60:540], None, 0.5),
        ("rocket", data.rocket()[40:427, 200:460], "rect", 1.2),
        ("colorwheel", data.colorwheel()[5:365, 5:365], None, 0.8),
        ("coins", data.coins()[20:290, 20:370], "rect", 0.5),
        ("logo", data.logo()[10:490, 30:490], None, 0.8),
        ("tissue", data.immunohistochemistry()[0:320, 0:480], "rect", 0.7),
        ("deep_field", data.hubble_deep_field()[100:500, 100:700], "rect", 0.6),
    ]
    sprites = [Sprite("horse", np.ascontiguousarray(fur), horse, 1.6)]
    for name, crop, shape, height in crops:
        rgb = _rgb(crop)
        h, w = rgb.shape[:2]
        alpha = np.ones((h, w), dtype=bool) if shape == "rect" else _ellipse(h, w)
        sprites.append(Sprite(name, rgb, alpha, height))
    return tuple(sprites)


def _saturated(rng: np.random.Generator, n: int) -> np.ndarray:
    """n fully saturated, bright colours uint8 [n, 3] (hues spread around the wheel)."""
    hues = (rng.uniform(0, 180) + np.arange(n) * 180 / n + rng.uniform(-10, 10, n)) % 180
    hsv = np.stack([hues, np.full(n, 255), rng.uniform(220, 255, n)], -1)
    return cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2RGB)[0]


def _procedural_texture(rng: np.random.Generator, h: int, w: int) -> tuple[str, np.ndarray]:
    kind = rng.choice(("checker", "rainbow", "stripes", "dots"))
    yy, xx = np.mgrid[0:h, 0:w]
    if kind == "checker":
        a, b = _saturated(rng, 2)
        cell = int(rng.integers(6, 20))
        rgb = np.where(((yy // cell + xx // cell) % 2 == 0)[..., None], a, b)
    elif kind == "rainbow":
        angle = rng.uniform(0, np.pi)
        ramp = xx * np.cos(angle) + yy * np.sin(angle)
        hue = ((ramp - ramp.min()) / (np.ptp(ramp) + 1e-6) * 179 * rng.uniform(1, 3)) % 180
        hsv = np.stack([hue, np.full_like(hue, 255), np.full_like(hue, 255)], -1)
        rgb = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    elif kind == "stripes":
        colours = _saturated(rng, int(rng.integers(2, 5)))
        width = int(rng.integers(5, 14))
        rgb = colours[((xx + yy * rng.uniform(-1, 1)) // width).astype(int) % len(colours)]
    else:
        a, b = _saturated(rng, 2)
        pitch = int(rng.integers(10, 22))
        dist = np.hypot(yy % pitch - pitch / 2, xx % pitch - pitch / 2)
        rgb = np.where((dist < pitch * 0.3)[..., None], a, b)
    return str(kind), np.ascontiguousarray(rgb.astype(np.uint8))


def _procedural_shape(rng: np.random.Generator, h: int, w: int) -> tuple[str, np.ndarray]:
    kind = rng.choice(("ellipse", "star", "polygon", "crate"))
    if kind == "ellipse":
        return str(kind), _ellipse(h, w)
    if kind == "crate":
        return str(kind), np.ones((h, w), dtype=bool)
    n = int(rng.integers(5, 9))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n)) if kind == "polygon" else \
        np.linspace(0, 2 * np.pi, 2 * n, endpoint=False)
    radius = rng.uniform(0.6, 1.0, len(angles))
    if kind == "star":
        radius[1::2] *= 0.45
    pts = np.stack([w / 2 * (1 + radius * np.cos(angles)), h / 2 * (1 + radius * np.sin(angles))],
                   -1)
    mask = np.zeros((h, w), dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return str(kind), mask.astype(bool)


def procedural_sprite(rng: np.random.Generator) -> Sprite:
    """A shape with a texture no street class has (uint8 RGB about 96 px tall)."""
    h = 96
    w = int(h * rng.uniform(0.6, 1.8))
    texture, rgb = _procedural_texture(rng, h, w)
    shape, alpha = _procedural_shape(rng, h, w)
    return Sprite(f"{texture}_{shape}", rgb, alpha, float(rng.uniform(0.4, 1.2)))


EXPOSURE_PHOTOS = ("espresso", "rocket", "coins", "tissue", "deep_field")
"""Photos a recipe may show its members as outliers (``"exposure"``, see ``random_sprite``)."""
HELD_OUT_PHOTOS = ("cat", "horse", "colorwheel", "logo")
"""Photos no recipe trains on (``"held-out-photo"``): evaluation and the demo use these."""
ANOMALY_KINDS = ("any", "photo", "procedural", "exposure", "held-out-photo")


def random_sprite(rng: np.random.Generator, kind: str = "any") -> Sprite:
    """A photo cut-out or a procedural shape, with its height jittered +-25 %.

    ``kind``: ``"any"`` (even odds), ``"photo"`` or ``"procedural"``; ``"exposure"`` (even
    odds of a procedural shape or one of ``EXPOSURE_PHOTOS``: outlier exposure in training) or
    ``"held-out-photo"`` (one of ``HELD_OUT_PHOTOS``, never in training). The same ``rng``
    state draws the same coin either way, so "any" picks what the single kinds would have
    picked.
    """
    if kind not in ANOMALY_KINDS:
        raise ValueError(f"anomaly kind must be one of {ANOMALY_KINDS}, got {kind!r}")
    coin = rng.random()
    if kind == "procedural" or (kind in ("any", "exposure") and coin >= 0.5):
        base = procedural_sprite(rng)
    else:
        names = {"exposure": EXPOSURE_PHOTOS, "held-out-photo": HELD_OUT_PHOTOS}.get(kind)
        photos = [p for p in photo_sprites() if names is None or p.name in names]
        base = photos[int(rng.integers(len(photos)))]
    return Sprite(base.name, base.rgb, base.alpha, base.height_m * float(rng.uniform(0.75, 1.25)))
