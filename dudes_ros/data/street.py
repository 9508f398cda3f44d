"""Synthetic street worlds: layout in metres and a painter's-algorithm rasteriser.

Coordinates are metres in a road-aligned frame: x to the right, y up from the ground, z forward
along the road. The pinhole camera sits at (0, camera height, cam_z) looking along +z and moves
only along z, so a drive is the same :class:`World` rendered at increasing ``cam_z``.

Everything is a flat polygon in 3-D (:class:`Prim`), projected and filled with ``cv2.fillPoly``
into the image and, with the very same integer vertices and no antialiasing, into the label
map, so labels are exact per pixel. Far-to-near drawing (ground, then roadside blocks, then
objects sorted by depth) resolves occlusion. OpenCV has no 3-D scene renderer that fits in a
few milliseconds per frame; this small one does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import cv2
import numpy as np

from dudes_ros.labels import NAME_TO_TRAIN_ID

T = NAME_TO_TRAIN_ID
Z_CLIP = 0.3  # near plane, metres
SHIFT = 4  # fillPoly sub-pixel bits: vertices are rounded to 1/16 px, identically everywhere
SKY_DISTANCE = 320.0


class Prim(NamedTuple):
    """``polys`` float [K, N, 3] (K polygons of N vertices, x/y/z metres) filled with ``color``
    (RGB) and labelled ``label`` (a trainId, or None to paint the image only)."""

    polys: np.ndarray
    color: tuple[int, int, int]
    label: int | None


@dataclass
class Thing:
    """Something drawn as a unit: ``prims`` in order, ``shadows`` (ground polygons [N, 3]),
    depth key ``z`` (its nearest z), ``speed`` in m/frame along z; ``attached`` things keep
    their z relative to the camera (the distant skyline)."""

    z: float
    prims: list[Prim]
    shadows: list[np.ndarray] = field(default_factory=list)
    speed: float = 0.0
    attached: bool = False

    def offset(self, cam_z: float, t: float) -> float:
        """How much to subtract from world z to get camera-relative z at frame ``t``."""
        return 0.0 if self.attached else cam_z - self.speed * t


@dataclass(frozen=True)
class Camera:
    """Pinhole camera as ratios of the image size, so one world renders at any resolution."""

    focal_ratio: float  # focal length / image width
    horizon_ratio: float  # horizon row / image height
    vp_ratio: float  # vanishing point column / image width
    height: float  # metres above the road

    def intrinsics(self, size: tuple[int, int]) -> tuple[float, float, float]:
        """(focal px, vanishing point column, horizon row) for ``size`` = (H, W)."""
        h, w = size
        return self.focal_ratio * w, self.vp_ratio * w, self.horizon_ratio * h

    def ground_distance(self, size: tuple[int, int], row: float) -> float:
        """Distance (m) of the road seen at image row ``row`` (inf at or above the horizon)."""
        f, _, cy = self.intrinsics(size)
        return math.inf if row <= cy else f * self.height / (row - cy)


@dataclass
class Style:
    """Appearance of one world: sky, haze, light, optics (all per scene, fixed over a drive)."""

    sky_top: np.ndarray
    sky_horizon: np.ndarray
    haze_rgb: np.ndarray
    visibility: float  # metres at which haze reaches 63 %
    gain: float
    tint: np.ndarray
    shadow: float  # multiplier of shadowed ground
    blur_sigma: float  # at 1024 px width; scaled with resolution
    noise_sigma: float


@dataclass
class World:
    """A street: camera, style, ground prims, roadside blocks and objects, road geometry."""

    camera: Camera
    style: Style
    ground: list[Prim]
    sides: list[Thing]
    objects: list[Thing]
    road: tuple[float, float]
    ego_lane: tuple[float, float]
    sidewalks: list[tuple[float, float]]
    _compiled: Compiled | None = field(default=None, repr=False)

    def compiled(self) -> Compiled:
        """The flattened prims (computed on first use)."""
        if self._compiled is None:
            self._compiled = compile_world(self)
        return self._compiled


class Stamp(Protocol):
    """Something placed in depth order that marks ``canvas.mask`` instead of painting (an
    anomaly): nearer things drawn after it clear the mark, so the mask ends up holding exactly
    its visible pixels."""

    z: float

    def offset(self, cam_z: float, t: float) -> float:
        """As :meth:`Thing.offset`."""

    def stamp(self, canvas: Canvas, dz: float) -> None:
        """Set ``canvas.mask`` to 1 on its silhouette, seen with world z offset ``dz``."""


def _clip_near(poly: np.ndarray, z_near: float) -> np.ndarray | None:
    """Sutherland-Hodgman clip of one polygon [N, 3] (camera-relative z) to z >= z_near."""
    out = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        if a[2] >= z_near:
            out.append(a)
        if (a[2] >= z_near) != (b[2] >= z_near):
            s = (z_near - a[2]) / (b[2] - a[2])
            out.append(a + s * (b - a))
    return np.array(out) if len(out) >= 3 else None


@dataclass
class Compiled:
    """All prims of a world flattened for vectorised projection (built once per world).

    verts float [V, 3]; vert_thing int [V] (index into the thing tables, -1 = static ground);
    per prim: start/k/n (vertex range, polygon count, vertices per polygon), color int [P, 3],
    label int [P] (-1 = paint only), thing int [P], kind int [P] (GROUND, SHADOW or SOLID).
    Things: z, speed, attached, layer (SIDE or OBJECT) and their prim index lists.
    """

    verts: np.ndarray
    vert_thing: np.ndarray
    start: np.ndarray
    k: np.ndarray
    n: np.ndarray
    color: np.ndarray
    label: np.ndarray
    kind: np.ndarray
    thing_z: np.ndarray
    thing_speed: np.ndarray
    thing_attached: np.ndarray
    thing_layer: np.ndarray
    thing_prims: list[list[int]]


GROUND, SHADOW, SOLID = 0, 1, 2
SIDE, OBJECT = 0, 1


def compile_world(world: World) -> Compiled:
    """Flatten ``world`` into :class:`Compiled` arrays."""
    polys: list[np.ndarray] = []
    meta: list[tuple[int, int, int, int, int, tuple[int, int, int]]] = []
    thing_prims: list[list[int]] = []

    def add(arr: np.ndarray, thing: int, kind: int, label: int, color: tuple) -> int:
        polys.append(arr)
        meta.append((thing, kind, arr.shape[0], arr.shape[1], label, color))
        return len(meta) - 1

    for prim in world.ground:
        add(prim.polys, -1, GROUND, -1 if prim.label is None else prim.label, prim.color)
    things = [(th, SIDE) for th in world.sides] + [(th, OBJECT) for th in world.objects]
    for ti, (thing, _) in enumerate(things):
        for shadow in thing.shadows:
            add(shadow[None], ti, SHADOW, -1, (0, 0, 0))
        thing_prims.append([add(pr.polys, ti, SOLID, -1 if pr.label is None else pr.label,
                                pr.color) for pr in thing.prims])
    sizes = np.array([m[2] * m[3] for m in meta])
    start = np.concatenate([[0], np.cumsum(sizes)])
    prim_thing = np.array([m[0] for m in meta])
    return Compiled(
        verts=np.concatenate([p.reshape(-1, 3) for p in polys]).astype(np.float64),
        vert_thing=np.repeat(prim_thing, sizes), start=start,
        k=np.array([m[2] for m in meta]), n=np.array([m[3] for m in meta]),
        color=np.array([m[5] for m in meta], dtype=np.float64),
        label=np.array([m[4] for m in meta]), kind=np.array([m[1] for m in meta]),
        thing_z=np.array([th.z for th, _ in things]),
        thing_speed=np.array([th.speed for th, _ in things]),
        thing_attached=np.array([th.attached for th, _ in things]),
        thing_layer=np.array([layer for _, layer in things]), thing_prims=thing_prims)


class Canvas:
    """The frame being painted: image uint8 [H, W, 3], labels uint8 [H, W], shade float32
    [H, W] (ground shadow factor) and, when an anomaly is placed, its visibility mask uint8."""

    def __init__(self, world: World, size: tuple[int, int], with_mask: bool) -> None:
        self.size = size
        self.world = world
        self.f, self.cx, self.cy = world.camera.intrinsics(size)
        h, w = size
        self.image = np.empty((h, w, 3), dtype=np.uint8)
        self.labels = np.empty((h, w), dtype=np.uint8)
        self.shade = np.ones((h, w), dtype=np.float32)
        self.mask = np.zeros((h, w), dtype=np.uint8) if with_mask else None

    def to_pixels(self, rel: np.ndarray) -> np.ndarray:
        """Camera-relative points [..., 3] (z >= Z_CLIP) -> fillPoly vertices int32 [..., 2]
        in 1/16 px."""
        z = rel[..., 2]
        u = self.cx + self.f * rel[..., 0] / z
        v = self.cy + self.f * (self.world.camera.height - rel[..., 1]) / z
        return np.round(np.stack([u, v], -1) * (1 << SHIFT)).astype(np.int32)

    def fill(self, pts: list[np.ndarray], color: tuple, label: int, kind: int) -> None:
        """Fill polygons (fillPoly vertices) as a ground/solid prim or a shadow."""
        if kind == SHADOW:
            cv2.fillPoly(self.shade, pts, self.world.style.shadow, cv2.LINE_8, SHIFT)
            return
        cv2.fillPoly(self.image, pts, color, cv2.LINE_8, SHIFT)
        if label >= 0:
            cv2.fillPoly(self.labels, pts, label, cv2.LINE_8, SHIFT)
        if self.mask is not None:
            cv2.fillPoly(self.mask, pts, 0, cv2.LINE_8, SHIFT)


def paint_background(canvas: Canvas) -> None:
    """Sky gradient above the horizon, plain terrain below (covered by the ground strips)."""
    h = canvas.size[0]
    style = canvas.world.style
    horizon = int(min(h, max(0, math.ceil(canvas.cy - 0.5))))
    rows = np.linspace(0.0, 1.0, max(horizon, 1), dtype=np.float32)[:, None]
    sky = style.sky_top * (1 - rows) + style.sky_horizon * rows
    canvas.image[:horizon] = sky[:horizon, None, :].astype(np.uint8)
    canvas.labels[:horizon] = T["sky"]
    canvas.image[horizon:] = (112, 118, 84)
    canvas.labels[horizon:] = T["terrain"]


class _Frame:
    """Per-frame projection of a compiled world: pixel vertices, visibility, hazed colours."""

    def __init__(self, canvas: Canvas, comp: Compiled, cam_z: float, t: float) -> None:
        self.canvas = canvas
        self.comp = comp
        off = np.where(comp.thing_attached, 0.0, cam_z - comp.thing_speed * t)
        self.offset = np.append(off, cam_z)  # index -1 (static ground) -> cam_z
        rel = comp.verts.copy()
        rel[:, 2] -= self.offset[comp.vert_thing]
        self.rel = rel
        z = rel[:, 2]
        starts = comp.start[:-1]
        zmin = np.minimum.reduceat(z, starts)
        zmax = np.maximum.reduceat(z, starts)
        pix = canvas.to_pixels(np.where((z >= Z_CLIP)[:, None], rel, [0.0, 0.0, 1.0]))
        self.pix = pix
        lo = np.minimum.reduceat(pix, starts) / (1 << SHIFT)
        hi = np.maximum.reduceat(pix, starts) / (1 << SHIFT)
        h, w = canvas.size
        in_view = (hi[:, 0] >= 0) & (lo[:, 0] <= w) & (hi[:, 1] >= 0) & (lo[:, 1] <= h)
        self.clip = zmin < Z_CLIP
        self.draw = (zmax >= Z_CLIP) & (in_view | self.clip)
        depth = np.add.reduceat(z, starts) / (comp.k * comp.n)
        style = canvas.world.style
        haze = np.where(comp.kind == SOLID, 1.0 - np.exp(-np.maximum(depth, 0) / style.visibility),
                        0.0)[:, None]
        self.colors = (comp.color + haze * (style.haze_rgb - comp.color)).astype(int).tolist()
        self.keys = comp.thing_z - off

    def paint(self, p: int) -> None:
        comp = self.comp
        if not self.draw[p]:
            return
        s, e, k, n = comp.start[p], comp.start[p + 1], comp.k[p], comp.n[p]
        if self.clip[p]:
            rel = self.rel[s:e].reshape(k, n, 3)
            if k > 1:  # batches of small polygons (windows, dashes): drop the cut ones
                whole = rel[rel[..., 2].min(axis=1) >= Z_CLIP]
                pts = list(self.canvas.to_pixels(whole))
            else:
                clipped = _clip_near(rel[0], Z_CLIP)
                pts = [] if clipped is None else [self.canvas.to_pixels(clipped)]
            if not pts:
                return
        else:
            pts = list(self.pix[s:e].reshape(k, n, 2))
        self.canvas.fill(pts, tuple(self.colors[p]), int(comp.label[p]), int(comp.kind[p]))


def rasterize(world: World, size: tuple[int, int], cam_z: float, t: float,
              anomaly: Stamp | None = None) -> Canvas:
    """Paint ``world`` seen from ``cam_z`` at frame ``t``. With an ``anomaly``, the returned
    ``canvas.mask`` holds 1 where it is visible; the image itself never contains it."""
    canvas = Canvas(world, size, with_mask=anomaly is not None)
    comp = world.compiled()
    frame = _Frame(canvas, comp, cam_z, t)
    paint_background(canvas)
    for p in np.flatnonzero(comp.kind != SOLID):  # ground (haze comes later), then shadows
        frame.paint(int(p))
    for layer in (SIDE, OBJECT):
        ids = np.flatnonzero(comp.thing_layer == layer)
        order = ids[np.argsort(-frame.keys[ids], kind="stable")].tolist()
        if layer == OBJECT and anomaly is not None:
            key = anomaly.z - anomaly.offset(cam_z, t)
            where = int(np.searchsorted(-frame.keys[order], -key, side="right"))
            order.insert(where, -1)
        for ti in order:
            if ti < 0:
                anomaly.stamp(canvas, anomaly.offset(cam_z, t))
                continue
            for p in comp.thing_prims[ti]:
                frame.paint(p)
    return canvas
