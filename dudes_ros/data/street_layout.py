"""Random street layouts: road and lanes, sidewalks, roadside blocks, furniture, people, traffic.

:func:`build_world` draws every random choice from the generator it is given, in a fixed
order, so a seed fixes the whole street. Sizes are in metres and loosely follow German urban
streets (Cityscapes): lanes 2.8-3.6 m, cars 4-4.8 m, buildings 5-28 m tall.
Colour ranges of road, sidewalk, wall and building overlap on purpose, as do vegetation and
terrain, so that a segmentation ensemble has honest ambiguity to disagree about.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from dudes_ros.data.street import SKY_DISTANCE, Camera, Prim, Style, Thing, World
from dudes_ros.labels import NAME_TO_TRAIN_ID

T = NAME_TO_TRAIN_ID
Rgb = tuple[int, int, int]


def ground_quad(x0: float, x1: float, z0: float, z1: float) -> np.ndarray:
    """Rectangle on the road plane, [4, 3]."""
    return np.array([[x0, 0, z0], [x1, 0, z0], [x1, 0, z1], [x0, 0, z1]], dtype=float)


def ground_strips(x0: float, x1: float, z0: np.ndarray, length: float) -> np.ndarray:
    """Rectangles across [x0, x1] starting at each of ``z0`` [K], ``length`` long: [K, 4, 3]."""
    z0 = np.asarray(z0, dtype=float)[:, None]
    xs = np.array([x0, x1, x1, x0])[None].repeat(len(z0), 0)
    zs = z0 + np.array([0.0, 0.0, length, length])
    return np.stack([xs, np.zeros_like(xs), zs], -1)


def front_quad(x0: float, x1: float, y0: float, y1: float, z: float) -> np.ndarray:
    """Upright rectangle facing the camera at depth z, [4, 3]."""
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=float)


def side_quad(x: float, y0: float, y1: float, z0: float, z1: float) -> np.ndarray:
    """Upright rectangle along the road at lateral x, [4, 3]."""
    return np.array([[x, y0, z0], [x, y0, z1], [x, y1, z1], [x, y1, z0]], dtype=float)


@functools.cache
def _circle(n: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.cos(a), np.sin(a)


def disc(xc: float, yc: float, z: float, rx: float, ry: float, n: int = 14) -> np.ndarray:
    """Upright ellipse facing the camera, [n, 3]."""
    cos, sin = _circle(n)
    return np.stack([xc + rx * cos, yc + ry * sin, np.full(n, z)], -1)


def ground_disc(xc: float, zc: float, rx: float, rz: float, n: int = 14) -> np.ndarray:
    """Ellipse lying on the road, [n, 3]."""
    cos, sin = _circle(n)
    return np.stack([xc + rx * cos, np.zeros(n), zc + rz * sin], -1)


def _scale(color: Rgb | np.ndarray, k: float) -> Rgb:
    return tuple(int(min(255, max(0, c * k))) for c in color)  # type: ignore[return-value]


def _jitter(rng: np.random.Generator, color: Rgb, amount: float) -> Rgb:
    noise = rng.normal(0, amount, 3).tolist()
    return tuple(int(min(255, max(0, c + d))) for c, d in zip(color, noise, strict=True))  # type: ignore


class WorldBuilder:
    """Collects prims for one world; knows the camera height, sun and face shading."""

    def __init__(self, rng: np.random.Generator, camera: Camera, style: Style) -> None:
        self.rng = rng
        self.camera = camera
        self.style = style
        elevation = rng.uniform(math.radians(25), math.radians(60))
        azimuth = rng.uniform(-math.pi, math.pi)
        self.sun = (math.cos(azimuth), math.sin(azimuth))  # shadows fall along this (x, z)
        self.shadow_len = 1.0 / math.tan(elevation)
        sx, sz = self.sun
        self.front_k = 0.7 + 0.3 * max(0.0, sz)  # faces looking at -z are lit when sz > 0
        self.left_k = 0.7 + 0.3 * max(0.0, sx)  # faces looking at -x
        self.right_k = 0.7 + 0.3 * max(0.0, -sx)

    def box(self, x0: float, x1: float, y0: float, y1: float, z0: float, z1: float,
            color: Rgb, label: int | None) -> list[Prim]:
        """Visible faces of an axis-aligned box (the camera is at x = 0, y = height)."""
        prims = []
        if y1 < self.camera.height:
            top = np.array([[x0, y1, z0], [x1, y1, z0], [x1, y1, z1], [x0, y1, z1]], float)
            prims.append(Prim(top[None], _scale(color, 1.1), label))
        if x0 > 0:
            prims.append(Prim(side_quad(x0, y0, y1, z0, z1)[None], _scale(color, self.left_k),
                              label))
        elif x1 < 0:
            prims.append(Prim(side_quad(x1, y0, y1, z0, z1)[None], _scale(color, self.right_k),
                              label))
        prims.append(Prim(front_quad(x0, x1, y0, y1, z0)[None], _scale(color, self.front_k),
                          label))
        return prims

    def box_shadow(self, x0: float, x1: float, z0: float, z1: float, height: float) -> np.ndarray:
        """Ground shadow of a box footprint lifted to ``height``: the hull of the footprint and
        its copy shifted along the sun direction, [N, 3]."""
        dx, dz = (height * self.shadow_len * c for c in self.sun)
        foot = np.array([[x0, z0], [x1, z0], [x1, z1], [x0, z1]], float)
        pts = np.concatenate([foot, foot + (dx, dz)])
        hull = cv2.convexHull(pts.astype(np.float32))[:, 0].astype(float)
        return np.stack([hull[:, 0], np.zeros(len(hull)), hull[:, 1]], -1)


def random_camera(rng: np.random.Generator) -> Camera:
    """Camera with randomised focal length, horizon, vanishing point and mounting height."""
    return Camera(focal_ratio=rng.uniform(0.8, 1.15), horizon_ratio=rng.uniform(0.38, 0.5),
                  vp_ratio=rng.uniform(0.4, 0.6), height=rng.uniform(1.2, 2.0))


def random_style(rng: np.random.Generator) -> Style:
    """Sunny or overcast sky, haze, exposure, white balance, shadows, blur and noise."""
    overcast = rng.random() < 0.3
    if overcast:
        top = rng.uniform(150, 200) + rng.normal(0, 5, 3)
        horizon = top + rng.uniform(10, 30)
    else:
        top = np.array([rng.uniform(40, 90), rng.uniform(90, 140), rng.uniform(170, 230)])
        horizon = np.array([rng.uniform(160, 200), rng.uniform(185, 215), rng.uniform(210, 240)])
    return Style(sky_top=np.clip(top, 0, 255), sky_horizon=np.clip(horizon, 0, 255),
                 haze_rgb=np.clip(horizon * rng.uniform(0.85, 1.0), 0, 255),
                 visibility=rng.uniform(150, 700), gain=rng.uniform(0.65, 1.2),
                 tint=1.0 + rng.normal(0, 0.05, 3),
                 shadow=rng.uniform(0.8, 0.92) if overcast else rng.uniform(0.4, 0.7),
                 blur_sigma=rng.uniform(0.3, 1.6), noise_sigma=rng.uniform(1.0, 6.0))


ROAD_GREYS = ((78, 78, 82), (96, 94, 92), (110, 108, 112), (70, 72, 70), (88, 84, 86))
SIDEWALK = ((140, 138, 134), (160, 150, 145), (150, 120, 110), (120, 122, 125), (175, 170, 160))
BUILDING = ((120, 120, 120), (170, 160, 140), (145, 85, 65), (200, 195, 185), (95, 100, 110),
            (190, 170, 120), (150, 150, 160))
CAR = ((220, 220, 225), (160, 162, 168), (110, 112, 115), (30, 30, 34), (25, 40, 90),
       (150, 20, 25), (60, 80, 60), (200, 190, 170), (20, 90, 160))
BIG_VEHICLE = ((235, 235, 230), (200, 180, 30), (170, 30, 30), (30, 80, 150), (120, 120, 120))
CLOTHES = ((30, 30, 35), (60, 60, 70), (140, 30, 40), (40, 60, 110), (200, 200, 195),
           (110, 90, 60), (80, 110, 80), (170, 120, 40))
SKIN = ((230, 190, 160), (200, 150, 110), (150, 100, 70), (90, 60, 45))
GREENS = ((50, 90, 35), (70, 110, 40), (40, 75, 40), (90, 120, 50), (60, 100, 60))
TERRAIN = ((110, 130, 70), (130, 140, 80), (120, 110, 80), (95, 120, 60))


def _pick(rng: np.random.Generator, palette: tuple[Rgb, ...], amount: float = 8.0) -> Rgb:
    return _jitter(rng, palette[int(rng.integers(len(palette)))], amount)


def build_world(rng: np.random.Generator, z_end: float = 160.0, ego_speed: float = 0.0,
                ego_clear_z: float | None = None, camera: Camera | None = None) -> World:
    """A random street ahead of the camera up to ``z_end`` m (plus a skyline).

    ``ego_speed`` (m/frame) is the speed of traffic in the ego lane; the ego lane holds no
    vehicle nearer than ``ego_clear_z`` (random 15-40 m when None) so the road ahead is free.
    ``camera`` (random when None) must then have been drawn from ``rng`` by the caller.
    """
    camera = random_camera(rng) if camera is None else camera
    b = WorldBuilder(rng, camera, random_style(rng))
    n_lanes = int(rng.integers(2, 5))
    lane_w = rng.uniform(2.8, 3.6)
    ego = int(rng.integers(n_lanes))
    left = -(ego + 0.5) * lane_w + rng.uniform(-0.4, 0.4)
    road = (left, left + n_lanes * lane_w)
    ego_lane = (left + ego * lane_w, left + (ego + 1) * lane_w)
    clear = rng.uniform(15, 40) if ego_clear_z is None else ego_clear_z
    z_far = z_end + SKY_DISTANCE
    ground, sidewalks, outer = _ground(b, road, lane_w, n_lanes, z_end, z_far)
    sides = _skyline(b)
    objects: list[Thing] = []
    for side, x_edge in ((-1, outer[0]), (1, outer[1])):
        sides += _blocks(b, side, x_edge, z_end + 60.0)
        objects += _furniture(b, side, road[0] if side < 0 else road[1], z_end)
    for x0, x1 in sidewalks:
        objects += _people(b, x0, x1, z_end)
    objects += _traffic(b, road, lane_w, n_lanes, ego, z_end, ego_speed, clear)
    return World(camera, b.style, ground, sides, objects, road, ego_lane, sidewalks)


def _ground(b: WorldBuilder, road: tuple[float, float], lane_w: float, n_lanes: int, z_end: float,
            z_far: float) -> tuple[list[Prim], list[tuple[float, float]], tuple[float, float]]:
    rng = b.rng
    z0 = -50.0
    road_rgb = _pick(rng, ROAD_GREYS, 4)
    prims = [Prim(ground_quad(road[0], road[1], z0, z_far)[None], road_rgb, T["road"])]
    walk_rgb = _pick(rng, SIDEWALK, 6)
    sidewalks = []
    outer = []
    for side, edge in ((-1, road[0]), (1, road[1])):
        x = edge
        curb = (x, x + side * 0.25)
        prims.append(Prim(ground_quad(min(curb), max(curb), z0, z_far)[None],
                          _scale(walk_rgb, 1.15), T["sidewalk"]))
        x += side * 0.25
        if rng.random() < 0.3:
            verge = (x, x + side * rng.uniform(0.8, 2.5))
            prims.append(Prim(ground_quad(min(verge), max(verge), z0, z_far)[None],
                              _pick(rng, TERRAIN), T["terrain"]))
            x = verge[1]
        walk = (x, x + side * rng.uniform(1.8, 4.5))
        prims.append(Prim(ground_quad(min(walk), max(walk), z0, z_far)[None], walk_rgb,
                          T["sidewalk"]))
        sidewalks.append((min(walk), max(walk)))
        if rng.random() < 0.6:  # paving joints
            zs = np.arange(z0, z_end, rng.uniform(1.5, 3.0))
            joints = ground_strips(min(walk), max(walk), zs, 0.05)
            prims.append(Prim(joints, _scale(walk_rgb, 0.8), None))
        outer.append(walk[1])
    for _ in range(int(rng.integers(0, 6))):  # asphalt repairs: road-coloured, shadow-like
        x = rng.uniform(*road)
        z = rng.uniform(3, 80)
        patch = ground_quad(x, x + rng.uniform(0.5, 3), z, z + rng.uniform(1, 8))
        prims.append(Prim(patch[None], _scale(road_rgb, rng.uniform(0.7, 1.2)), T["road"]))
    for _ in range(int(rng.integers(0, 3))):  # manhole covers
        prims.append(Prim(ground_disc(rng.uniform(*road), rng.uniform(4, 60), 0.35, 0.35)[None],
                          _scale(road_rgb, 0.6), T["road"]))
    prims += _markings(b, road, lane_w, n_lanes, z0, z_end, z_far)
    return prims, sidewalks, (outer[0], outer[1])


def _markings(b: WorldBuilder, road: tuple[float, float], lane_w: float, n_lanes: int, z0: float,
              z_end: float, z_far: float) -> list[Prim]:
    rng = b.rng
    paint = _jitter(rng, (215, 215, 210), 10)
    width = rng.uniform(0.1, 0.16)
    period, dash = rng.uniform(8, 12), rng.uniform(2.5, 4)
    zs = np.arange(z0 + rng.uniform(0, period), z_end + 40.0, period)
    quads = [ground_strips(x - width / 2, x + width / 2, zs, dash)
             for x in road[0] + lane_w * np.arange(1, n_lanes)]
    prims = [Prim(np.concatenate(quads), paint, T["road"])] if quads else []
    if rng.random() < 0.6:
        edges = [ground_quad(x, x + width, z0, z_far) for x in (road[0] + 0.3, road[1] - 0.45)]
        prims.append(Prim(np.stack(edges), paint, T["road"]))
    if rng.random() < 0.3:  # zebra crossing
        zc = rng.uniform(12, 60)
        xs = np.arange(road[0] + 0.3, road[1] - 0.5, 1.0)
        prims.append(Prim(np.stack([ground_quad(x, x + 0.5, zc, zc + 4) for x in xs]), paint,
                          T["road"]))
    return prims


def _skyline(b: WorldBuilder) -> list[Thing]:
    """Distant buildings and tree lines on the horizon; they move with the camera."""
    rng = b.rng
    z = SKY_DISTANCE
    things = []
    x = -z * 1.2
    while x < z * 1.2:
        width = rng.uniform(8, 40)
        if rng.random() < 0.3:
            prim = Prim(disc(x + width / 2, 0, z, width / 2, rng.uniform(6, 14))[None],
                        _pick(rng, GREENS), T["vegetation"])
        else:
            prim = Prim(front_quad(x, x + width, 0, rng.uniform(6, 40), z)[None],
                        _pick(rng, BUILDING, 12), T["building"])
        things.append(Thing(z + rng.uniform(0, 1), [prim], attached=True))
        x += width
    return things


def _windows(b: WorldBuilder, face: str, fixed: float, span: tuple[float, float],
             height: float) -> np.ndarray | None:
    """Window quads on a facade: ``face`` 'x' (along z at x = fixed) or 'z' (across x)."""
    rng = b.rng
    floor_h = rng.uniform(2.8, 3.6)
    win_w, win_h = rng.uniform(0.8, 1.6), rng.uniform(1.0, 1.8)
    pitch = rng.uniform(win_w + 0.8, win_w + 2.5)
    lo, hi = min(span), max(span)
    ys = np.arange(rng.uniform(0.8, 1.6), height - win_h - 0.4, floor_h)
    ss = np.arange(lo + 0.6, hi - win_w - 0.3, pitch)
    if not len(ys) or not len(ss):
        return None
    y, s = (a.ravel()[:, None] for a in np.meshgrid(ys, ss, indexing="ij"))
    along = s + np.array([0.0, win_w, win_w, 0.0])
    up = y + np.array([0.0, 0.0, win_h, win_h])
    fixed_col = np.full_like(along, fixed)
    if face == "x":
        return np.stack([fixed_col, up, along], -1)
    return np.stack([along, up, fixed_col], -1)


def _blocks(b: WorldBuilder, side: int, x_edge: float, z_stop: float) -> list[Thing]:
    """Buildings, walls, fences and hedges along one side of the street."""
    rng = b.rng
    things: list[Thing] = []
    z = -rng.uniform(10, 40)
    while z < z_stop:
        length = rng.uniform(8, 35)
        kind = rng.choice(("building", "vegetation", "wall", "fence"), p=(0.6, 0.14, 0.13, 0.13))
        x_in = x_edge + side * (rng.uniform(0, 1.5) if kind == "building" else 0.0)
        if kind in ("wall", "fence"):
            things += _building(b, side, x_in + side * rng.uniform(3, 10), z, length)
            things.append(_barrier(b, side, x_in, z, length, str(kind)))
        elif kind == "vegetation":
            height = rng.uniform(1.2, 4.0)
            x0, x1 = sorted((x_in, x_in + side * rng.uniform(1, 4)))
            colour = _pick(rng, GREENS, 10)
            things.append(Thing(z, b.box(x0, x1, 0, height, z, z + length, colour,
                                         T["vegetation"]),
                                [b.box_shadow(x0, x1, z, z + length, height)]))
        else:
            things += _building(b, side, x_in, z, length)
        z += length + (rng.uniform(1, 6) if rng.random() < 0.3 else 0.0)
    return things


def _building(b: WorldBuilder, side: int, x_in: float, z: float, length: float) -> list[Thing]:
    rng = b.rng
    height = rng.uniform(5, 28)
    depth = rng.uniform(8, 20)
    x0, x1 = sorted((x_in, x_in + side * depth))
    colour = _pick(rng, BUILDING, 12)
    prims = b.box(x0, x1, 0, height, z, z + length, colour, T["building"])
    glass = _pick(rng, ((50, 60, 75), (80, 90, 100), (35, 40, 45), (110, 130, 150)), 8)
    facade_x = x0 if side > 0 else x1
    for quads in (_windows(b, "x", facade_x, (z, z + length), height),
                  _windows(b, "z", z, (x0, x1), height)):
        if quads is not None:
            prims.append(Prim(quads, glass, T["building"]))
    return [Thing(z, prims, [b.box_shadow(x0, x1, z, z + length, height)])]


def _barrier(b: WorldBuilder, side: int, x: float, z: float, length: float, kind: str) -> Thing:
    rng = b.rng
    height = rng.uniform(1.0, 2.5) if kind == "wall" else rng.uniform(1.0, 2.0)
    thick = 0.3 if kind == "wall" else 0.06
    x0, x1 = sorted((x, x + side * thick))
    if kind == "wall":
        colour = _pick(rng, BUILDING[:2] + SIDEWALK[:2], 10)
        prims = b.box(x0, x1, 0, height, z - 0.01, z + length, colour, T["wall"])
    else:
        colour = _pick(rng, ((120, 110, 95), (140, 140, 135), (90, 95, 90)), 10)
        prims = b.box(x0, x1, 0, height, z - 0.01, z + length, colour, T["fence"])
        face_x = x0 if side > 0 else x1
        zs = np.arange(z, z + length, rng.uniform(0.12, 0.3))[:, None]
        along = zs + np.array([0.0, 0.04, 0.04, 0.0])
        bars = np.stack([np.full_like(along, face_x),
                         np.broadcast_to([0.0, 0.0, height, height], along.shape), along], -1)
        prims.append(Prim(bars, _scale(colour, 0.6), None))
    return Thing(z - 0.01, prims, [b.box_shadow(x0, x1, z, z + length, height)])


def _furniture(b: WorldBuilder, side: int, curb_x: float, z_end: float) -> list[Thing]:
    """Poles (bare, with a sign, with a traffic light or a lamp arm) and trees."""
    rng = b.rng
    things = []
    z = rng.uniform(-5, 15)
    while z < z_end:
        x = curb_x + side * rng.uniform(0.4, 0.8)
        if rng.random() < 0.3:
            things.append(_tree(b, x + side * rng.uniform(0.5, 1.5), z))
        else:
            things.append(_pole(b, side, x, z))
        z += rng.uniform(8, 30)
    return things


def _pole(b: WorldBuilder, side: int, x: float, z: float) -> Thing:
    rng = b.rng
    w = rng.uniform(0.08, 0.22)
    height = rng.uniform(3.0, 8.0)
    grey = _jitter(rng, (130, 130, 128), 20)
    prims = b.box(x - w / 2, x + w / 2, 0, height, z, z + w, grey, T["pole"])
    kind = rng.choice(("bare", "sign", "light", "lamp"), p=(0.2, 0.4, 0.25, 0.15))
    top = height
    if kind == "sign":
        top = min(height, rng.uniform(2.2, 3.5))
        prims = b.box(x - w / 2, x + w / 2, 0, top, z, z + w, grey, T["pole"])
        prims += _sign(b, x, top, z - 0.05)
    elif kind == "light":
        top = min(height, rng.uniform(3.0, 4.5))
        prims = b.box(x - w / 2, x + w / 2, 0, top, z, z + w, grey, T["pole"])
        prims += _traffic_light(b, x, top, z - 0.2)
    elif kind == "lamp":
        reach = -side * rng.uniform(1.0, 2.5)
        x0, x1 = sorted((x, x + reach))
        prims += b.box(x0, x1, height - 0.12, height, z, z + 0.1, grey, T["pole"])
        prims.append(Prim(front_quad(x + reach - 0.3, x + reach + 0.3, height - 0.25, height,
                                     z - 0.02)[None], _scale(grey, 0.8), T["pole"]))
    shadow = b.box_shadow(x - w / 2, x + w / 2, z, z + w, top)
    return Thing(z - 0.2, prims, [shadow])


def _sign(b: WorldBuilder, x: float, top: float, z: float) -> list[Prim]:
    rng = b.rng
    r = rng.uniform(0.3, 0.45)
    shape = rng.choice(("round", "triangle", "square"))
    outer, inner = [((200, 30, 30), (235, 235, 235)), ((30, 70, 170), (30, 70, 170)),
                    ((235, 200, 20), (235, 200, 20)), ((235, 235, 235), (30, 30, 30))][
        int(rng.integers(4))]
    yc = top + r * 0.9
    if shape == "round":
        polys = [disc(x, yc, z, r, r), disc(x, yc, z - 0.01, r * 0.75, r * 0.75)]
    elif shape == "triangle":
        tri = np.array([[x - r, yc - r * 0.8, z], [x + r, yc - r * 0.8, z], [x, yc + r, z]])
        polys = [tri, (tri - [x, yc, z]) * [0.65, 0.65, 1] + [x, yc - r * 0.1, z - 0.01]]
    else:
        polys = [front_quad(x - r, x + r, yc - r, yc + r, z),
                 front_quad(x - r * 0.8, x + r * 0.8, yc - r * 0.8, yc + r * 0.8, z - 0.01)]
    return [Prim(polys[0][None], outer, T["traffic sign"]),
            Prim(polys[1][None], inner, T["traffic sign"])]


def _traffic_light(b: WorldBuilder, x: float, top: float, z: float) -> list[Prim]:
    rng = b.rng
    housing = _jitter(rng, (35, 38, 35), 6)
    prims = [Prim(front_quad(x - 0.17, x + 0.17, top, top + 0.9, z)[None], housing,
                  T["traffic light"])]
    lit = int(rng.integers(3))
    colours = ((230, 40, 30), (240, 180, 20), (40, 220, 120))
    for i, colour in enumerate(colours):
        c = colour if i == lit else _scale(colour, 0.25)
        prims.append(Prim(disc(x, top + 0.75 - i * 0.28, z - 0.01, 0.1, 0.1, 10)[None], c,
                          T["traffic light"]))
    return prims


def _tree(b: WorldBuilder, x: float, z: float) -> Thing:
    rng = b.rng
    trunk_h = rng.uniform(1.8, 3.5)
    w = rng.uniform(0.2, 0.4)
    bark = _jitter(rng, (85, 70, 50), 10)
    prims = b.box(x - w / 2, x + w / 2, 0, trunk_h, z, z + w, bark, T["vegetation"])
    r = rng.uniform(1.2, 2.8)
    crown_y = trunk_h + r * 0.7
    base = _pick(rng, GREENS, 10)
    for _ in range(int(rng.integers(3, 6))):
        dx, dy = rng.normal(0, r * 0.35, 2)
        rr = r * rng.uniform(0.55, 0.9)
        prims.append(Prim(disc(x + dx, crown_y + dy, z - 0.3, rr, rr * rng.uniform(0.8, 1.1),
                               16)[None], _jitter(rng, base, 12), T["vegetation"]))
    k = crown_y * b.shadow_len
    shadow = ground_disc(x + k * b.sun[0], z + k * b.sun[1], r, r * 0.8)
    return Thing(z - 0.3, prims, [shadow, b.box_shadow(x - w / 2, x + w / 2, z, z + w, trunk_h)])


def _people(b: WorldBuilder, x0: float, x1: float, z_end: float) -> list[Thing]:
    rng = b.rng
    things = []
    for _ in range(int(rng.integers(0, 1 + round(5 * z_end / 160)))):
        things.append(_person(b, rng.uniform(x0 + 0.3, x1 - 0.3), rng.uniform(3, z_end * 0.6)))
    return things


def _person(b: WorldBuilder, x: float, z: float) -> Thing:
    rng = b.rng
    h = rng.uniform(1.5, 1.95)
    legs, top, skin = _pick(rng, CLOTHES, 10), _pick(rng, CLOTHES, 10), _pick(rng, SKIN, 8)
    stride = rng.uniform(0.0, 0.12)
    label = T["person"]
    polys = [
        (np.array([[x - 0.17 - stride, 0, z], [x - 0.03 - stride, 0, z],
                   [x - 0.01, h * 0.5, z], [x - 0.17, h * 0.5, z]]), legs),
        (np.array([[x + 0.03 + stride, 0, z], [x + 0.17 + stride, 0, z],
                   [x + 0.17, h * 0.5, z], [x + 0.01, h * 0.5, z]]), legs),
        (front_quad(x - 0.27, x - 0.19, h * 0.45, h * 0.8, z - 0.01), top),
        (front_quad(x + 0.19, x + 0.27, h * 0.45, h * 0.8, z - 0.01), top),
        (front_quad(x - 0.2, x + 0.2, h * 0.48, h * 0.82, z - 0.02), top),
        (disc(x, h * 0.9, z - 0.02, 0.1, 0.12, 10), skin),
    ]
    prims = [Prim(p[None], c, label) for p, c in polys]
    return Thing(z - 0.02, prims, [b.box_shadow(x - 0.2, x + 0.2, z - 0.1, z + 0.1, h)])


def _traffic(b: WorldBuilder, road: tuple[float, float], lane_w: float, n_lanes: int, ego: int,
             z_end: float, ego_speed: float, clear: float) -> list[Thing]:
    """Vehicles lane by lane: one speed per lane (parked, with, or against the ego lane)."""
    rng = b.rng
    things = []
    for lane in range(n_lanes):
        xc = road[0] + (lane + 0.5) * lane_w
        outer = lane in (0, n_lanes - 1) and lane != ego and n_lanes >= 3
        parked = outer and rng.random() < 0.5
        if lane == ego:
            speed, z = ego_speed, clear
        elif parked:
            speed, z = 0.0, rng.uniform(-20, 10)
            xc += (0.6 if lane == 0 else -0.6) * (lane_w / 2 - 1.0)
        else:
            oncoming = lane < ego and rng.random() < 0.6
            speed = ego_speed * (rng.uniform(-1.2, -0.6) if oncoming else rng.uniform(0.6, 1.3))
            z = rng.uniform(-60, 20) if ego_speed else rng.uniform(2, 20)
        while z < z_end:
            x = xc + rng.normal(0, 0.15)
            big = rng.random() < 0.12
            thing, length = _big_vehicle(b, x, z) if big else _car(b, x, z)
            thing.speed = speed
            things.append(thing)
            z += length + (rng.uniform(0.8, 3) if parked else rng.uniform(4, 35))
    return things


def _car(b: WorldBuilder, x: float, z: float) -> tuple[Thing, float]:
    rng = b.rng
    w, h, length = rng.uniform(1.65, 1.95), rng.uniform(1.35, 1.65), rng.uniform(3.9, 4.9)
    body = _pick(rng, CAR, 10)
    label = T["car"]
    belt = h * rng.uniform(0.5, 0.6)
    x0, x1 = x - w / 2, x + w / 2
    dark = (22, 22, 24)
    prims = [Prim(front_quad(x0 + 0.1, x1 - 0.1, 0, 0.4, z + 0.4)[None], dark, label)]
    prims += b.box(x0, x1, 0.25, belt, z, z + length, body, label)
    side_x = x0 if x0 > 0 else x1
    if x0 > 0 or x1 < 0:
        for zc in (z + 0.8, z + length - 0.8):
            prims.append(Prim(_wheel(side_x, zc), dark, label))
    c0, c1 = z + length * rng.uniform(0.15, 0.3), z + length * rng.uniform(0.65, 0.8)
    cab = b.box(x0 + 0.12, x1 - 0.12, belt, h, c0, c1, body, label)
    prims += cab
    glass = _jitter(rng, (45, 55, 65), 8)
    prims.append(Prim(front_quad(x0 + 0.25, x1 - 0.25, belt + 0.08, h - 0.06, c0 - 0.01)[None],
                      glass, label))
    if x0 > 0 or x1 < 0:
        gx = (x0 + 0.12) if x0 > 0 else (x1 - 0.12)
        prims.append(Prim(side_quad(gx, belt + 0.08, h - 0.06, c0 + 0.15, c1 - 0.15)[None],
                          glass, label))
    lights = (190, 25, 25)
    for lx in (x0 + 0.05, x1 - 0.3):
        prims.append(Prim(front_quad(lx, lx + 0.25, belt - 0.2, belt - 0.05, z - 0.01)[None],
                          lights, label))
    prims.append(Prim(front_quad(x - 0.26, x + 0.26, 0.35, 0.47, z - 0.01)[None],
                      (225, 225, 220), label))
    return Thing(z - 0.02, prims, [b.box_shadow(x0, x1, z, z + length, h * 0.8)]), length


def _wheel(x: float, zc: float, r: float = 0.32, n: int = 12) -> np.ndarray:
    """Upright disc along the road (a wheel on a car's side), [1, n, 3]."""
    cos, sin = _circle(n)
    pts = np.stack([np.full(n, x), r + r * sin, zc + r * cos], -1)
    return pts[None]


def _big_vehicle(b: WorldBuilder, x: float, z: float) -> tuple[Thing, float]:
    rng = b.rng
    bus = rng.random() < 0.4
    label = T["bus"] if bus else T["truck"]
    w, h = rng.uniform(2.3, 2.55), rng.uniform(3.0, 3.3) if bus else rng.uniform(2.8, 3.8)
    length = rng.uniform(10, 13) if bus else rng.uniform(6, 11)
    x0, x1 = x - w / 2, x + w / 2
    colour = _pick(rng, BIG_VEHICLE, 10)
    dark = (22, 22, 24)
    prims = [Prim(front_quad(x0 + 0.15, x1 - 0.15, 0, 0.6, z + 0.5)[None], dark, label)]
    prims += b.box(x0, x1, 0.4, h, z, z + length, colour, label)
    side_x = x0 if x0 > 0 else x1
    if x0 > 0 or x1 < 0:
        for zc in (z + 1.2, z + length - 2.0):
            prims.append(Prim(_wheel(side_x, zc, 0.5), dark, label))
        if bus:
            band = side_quad(side_x, 1.3, h - 0.4, z + 0.5, z + length - 0.5)
            prims.append(Prim(band[None], _jitter(rng, (45, 55, 65), 8), label))
    if bus:
        rear = front_quad(x0 + 0.2, x1 - 0.2, 1.6, h - 0.3, z - 0.01)
        prims.append(Prim(rear[None], _jitter(rng, (45, 55, 65), 8), label))
    else:
        prims.append(Prim(front_quad(x - 0.02, x + 0.02, 0.5, h - 0.1, z - 0.01)[None],
                          _scale(colour, 0.5), label))
    return Thing(z - 0.02, prims, [b.box_shadow(x0, x1, z, z + length, h)]), length
