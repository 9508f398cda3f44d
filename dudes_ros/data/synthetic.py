"""Synthetic street scenes with exact labels, optional anomalies, and forward-drive sequences.

* :func:`render_scene` - one frame of a random street (deterministic by seed, any size).
* :func:`render_sequence` - a forward drive through one street in which an anomaly slides
  onto the road ahead at ``enter_frame`` and leaves the view at ``leave_frame``;
  :func:`render_drive` adds where the anomaly stands in each frame (:class:`DriveTruth`).
* :func:`write_cityscapes_layout` / :func:`write_sequence_layout` - the same, written as
  Cityscapes-named PNGs (``leftImg8bit``, ``gtFine_labelIds``, ``gtFine_anomalyMask``) so that
  they flow through the Cityscapes reader.

Random streams (all ``np.random.default_rng``; never the global RNG): ``seed`` lays out the
world, ``[seed, 1]`` picks and places the anomaly, ``[seed, 2]`` the surface textures and
``[seed, 3, frame]`` the sensor noise. The anomaly never touches the other streams and is
composited after the whole scene is finished, so every pixel outside its mask is bit-identical
to the scene rendered without it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from dudes_ros.data import textures
from dudes_ros.data.anomalies import Sprite, random_sprite
from dudes_ros.data.street import Z_CLIP, Camera, Canvas, World, rasterize
from dudes_ros.data.street_layout import build_world, random_camera
from dudes_ros.files import atomic_write_bytes
from dudes_ros.labels import IGNORE_INDEX, TRAIN_ID_TO_ID

ANOMALY_STREAM, TEXTURE_STREAM, NOISE_STREAM = 1, 2, 3


@dataclass(frozen=True)
class Scene:
    """One rendered frame: ``image`` uint8 [H, W, 3] RGB, ``train_ids`` uint8 [H, W]
    (255 on anomalies), ``anomaly_mask`` bool [H, W] (True exactly on inserted pixels)."""

    image: np.ndarray
    train_ids: np.ndarray
    anomaly_mask: np.ndarray


@dataclass(frozen=True)
class PlacedAnomaly:
    """A sprite standing upright on the ground at lateral ``x`` and world depth ``z`` (m),
    ``height_m`` tall."""

    sprite: Sprite
    x: float
    z: float
    height_m: float

    def offset(self, cam_z: float, t: float) -> float:
        """Camera-relative z = world z - cam_z (it does not move)."""
        return cam_z

    def footprint(self, canvas: Canvas, dz: float) -> tuple[int, int, int, int] | None:
        """Pixel box (top, bottom, left, right) of the sprite, or None when behind the camera."""
        d = self.z - dz
        if d < Z_CLIP:
            return None
        half = self.height_m * self.sprite.aspect / 2
        f, cx, cy = canvas.f, canvas.cx, canvas.cy
        cam_h = canvas.world.camera.height
        top = round(cy + f * (cam_h - self.height_m) / d)
        bottom = max(top + 1, round(cy + f * cam_h / d))
        left = round(cx + f * (self.x - half) / d)
        right = max(left + 1, round(cx + f * (self.x + half) / d))
        return top, bottom, left, right

    def _raster(self, canvas: Canvas, dz: float) -> tuple[tuple[slice, slice], np.ndarray,
                                                          np.ndarray] | None:
        box = self.footprint(canvas, dz)
        if box is None:
            return None
        top, bottom, left, right = box
        h, w = canvas.size
        if bottom <= 0 or right <= 0 or top >= h or left >= w or bottom - top > 4 * h:
            return None
        rgb, alpha = self.sprite.rasterize(bottom - top, right - left)
        crop = (slice(max(0, -top), min(bottom, h) - top), slice(max(0, -left),
                                                               min(right, w) - left))
        where = (slice(max(0, top), min(bottom, h)), slice(max(0, left), min(right, w)))
        return where, rgb[crop], alpha[crop]

    def stamp(self, canvas: Canvas, dz: float) -> None:
        """Mark the silhouette in ``canvas.mask`` (nearer things drawn later clear it)."""
        raster = self._raster(canvas, dz)
        if raster is not None and canvas.mask is not None:
            where, _, alpha = raster
            canvas.mask[where][alpha] = 1

    def composite(self, image: np.ndarray, mask: np.ndarray, canvas: Canvas, dz: float,
                  blur_sigma: float) -> None:
        """Write the lit, hazed, blurred sprite into float image [H, W, 3] where ``mask``."""
        raster = self._raster(canvas, dz)
        if raster is None:
            return
        where, rgb, _ = raster
        style = canvas.world.style
        patch = rgb.astype(np.float32)
        if blur_sigma > 0:
            patch = cv2.GaussianBlur(patch, (0, 0), blur_sigma)
        haze = 1.0 - math.exp(-(self.z - dz) / style.visibility)
        patch += haze * (style.haze_rgb.astype(np.float32) - patch)
        patch *= (style.gain * style.tint).astype(np.float32)
        region = image[where]
        inside = mask[where]
        region[inside] = patch[inside]


def _check_render_size(size: tuple[int, int]) -> tuple[int, int]:
    if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 16 for v in size):
        raise ValueError(f"size must be (height, width) integers >= 16, got {size!r}")
    return int(size[0]), int(size[1])


def _finish(world: World, canvas: Canvas, seed: int, frame: int, cam_z: float,
            anomaly: PlacedAnomaly | None) -> Scene:
    """Texture, light, haze, blur, anomaly compositing and sensor noise of a painted frame."""
    size = canvas.size
    h, w = size
    style = world.style
    grain, blotch = textures.surface_noise(np.random.default_rng([seed, TEXTURE_STREAM]), size)
    rows = np.arange(h, dtype=np.float64) + 0.5
    with np.errstate(divide="ignore"):
        depth = np.where(rows > canvas.cy, canvas.f * world.camera.height / (rows - canvas.cy),
                         np.inf)
    ground_haze = (1.0 - np.exp(-depth / style.visibility)).astype(np.float32)
    blur = style.blur_sigma * math.sqrt(w / 1024)
    image = textures.finish(canvas.image, canvas.labels, canvas.shade, grain, blotch,
                            ground_haze=ground_haze, haze_rgb=style.haze_rgb, gain=style.gain,
                            tint=style.tint, blur_sigma=blur)
    train_ids = canvas.labels
    mask = np.zeros(size, dtype=bool)
    if anomaly is not None and canvas.mask is not None:
        mask = canvas.mask.astype(bool)
        anomaly.composite(image, mask, canvas, cam_z, blur)
        train_ids[mask] = IGNORE_INDEX
    noise = np.random.default_rng([seed, NOISE_STREAM, frame]).standard_normal(
        size, dtype=np.float32)
    return Scene(textures.add_sensor_noise(image, noise, style.noise_sigma), train_ids, mask)


def _place_in_scene(rng: np.random.Generator, world: World, size: tuple[int, int],
                    kind: str) -> PlacedAnomaly:
    """A random anomaly of ``kind`` (see ``random_sprite``) on the free ego lane (road) or on a
    sidewalk, in view, >= ~6 px tall."""
    sprite = random_sprite(rng, kind)
    cam = world.camera
    f, cx, _ = cam.intrinsics(size)
    height = sprite.height_m
    z_near = 1.3 * cam.ground_distance(size, size[0])
    z_far = max(z_near + 1, min(30.0, f * height / 12))  # >= ~12 px tall
    near_bias = rng.random() ** 1.5  # nearer (larger) placements are more likely
    if rng.random() < 0.65:
        z_far = max(z_near + 0.5, min(z_far, _ego_clear(world) - 2))
        x = rng.uniform(world.ego_lane[0] + 0.4, world.ego_lane[1] - 0.4)
    else:
        x0, x1 = world.sidewalks[int(rng.integers(len(world.sidewalks)))]
        x = rng.uniform(x0 + 0.2, x1 - 0.2)
    z = z_near + near_bias * (z_far - z_near)
    limit = (0.45 * size[1] - abs(cx - size[1] / 2)) * z / f  # keep the centre in view
    return PlacedAnomaly(sprite, float(np.clip(x, -limit, limit)), float(z), height)


def _ego_clear(world: World) -> float:
    lo, hi = world.ego_lane
    ahead = [th.z for th in world.objects if th.prims and lo <= _centre_x(th) <= hi]
    return min(ahead, default=60.0)


def _centre_x(thing) -> float:
    return float(thing.prims[0].polys[..., 0].mean())


def render_scene(seed: int, size: tuple[int, int] = (256, 512), anomaly: bool = False,
                 anomaly_kind: str = "any") -> Scene:
    """One street scene, deterministic by ``seed``.

    size is (H, W); the same seed gives the same street at every size. With ``anomaly``, an
    out-of-distribution object stands on the road or sidewalk: its pixels are 255 in
    ``train_ids`` and True in ``anomaly_mask``, and all other pixels equal the scene without it.
    ``anomaly_kind``: ``"any"``, ``"photo"`` or ``"procedural"`` (``anomalies.random_sprite``).
    """
    size = _check_render_size(size)
    world = build_world(np.random.default_rng(seed))
    if not anomaly:
        return _finish(world, rasterize(world, size, 0.0, 0.0), seed, 0, 0.0, None)
    rng = np.random.default_rng([seed, ANOMALY_STREAM])
    for _ in range(8):  # a placement hidden behind something is re-drawn (rare)
        placed = _place_in_scene(rng, world, size, anomaly_kind)
        canvas = rasterize(world, size, 0.0, 0.0, placed)
        if canvas.mask is not None and canvas.mask.any():
            break
    return _finish(world, canvas, seed, 0, 0.0, placed)


SLIDE_FRAMES = 4  # frames an anomaly takes from the image border to its place on the road


@dataclass(frozen=True)
class _Drive:
    world: World
    anomaly: PlacedAnomaly  # where it ends up, on the road ahead
    speed: float  # m/frame
    enter_frame: int
    side: int  # -1: slides in across the left image border, +1: across the right one

    def anomaly_at(self, k: int, size: tuple[int, int]) -> PlacedAnomaly:
        """The anomaly at frame ``k``: wholly outside the image before ``enter_frame``, half
        across the image border at ``enter_frame``, then sliding to its place on the road in
        ``SLIDE_FRAMES`` frames and standing still there."""
        a = self.anomaly
        f, cx, _ = self.world.camera.intrinsics(size)
        d = a.z - k * self.speed
        half = a.height_m * a.sprite.aspect / 2
        border = (-cx if self.side < 0 else size[1] - cx) * d / f  # centre on the border
        if k < self.enter_frame:
            return PlacedAnomaly(a.sprite, border + self.side * (half + 0.5), a.z, a.height_m)
        t = min(1.0, (k - self.enter_frame) / SLIDE_FRAMES)
        return PlacedAnomaly(a.sprite, border + t * (a.x - border), a.z, a.height_m)


def _check_drive(size: tuple[int, int], n_frames: int, enter_frame: int,
                 leave_frame: int) -> tuple[int, int]:
    size = _check_render_size(size)
    if not (isinstance(n_frames, int) and n_frames >= 1):
        raise ValueError(f"n_frames must be an integer >= 1, got {n_frames!r}")
    if not (0 <= enter_frame < leave_frame <= n_frames):
        raise ValueError(f"need 0 <= enter_frame < leave_frame <= n_frames, got enter_frame="
                         f"{enter_frame}, leave_frame={leave_frame}, n_frames={n_frames}")
    return size


def _plan_drive(seed: int, size: tuple[int, int], n_frames: int, enter_frame: int,
                leave_frame: int, anomaly_kind: str = "any", entry_height: int = 5) -> _Drive:
    """World, anomaly and ego speed for a drive with the anomaly in view exactly on frames
    [enter_frame, leave_frame): it is half across an image border at enter_frame, at least
    ``entry_height`` px tall, and its top edge passes below the image between leave_frame - 1
    and leave_frame."""
    rng = np.random.default_rng(seed)
    camera = random_camera(rng)
    arng = np.random.default_rng([seed, ANOMALY_STREAM])
    sprite = random_sprite(arng, anomaly_kind)
    f, _, cy = camera.intrinsics(size)
    span = leave_frame - enter_frame
    tall = max(5.0, float(entry_height))
    # Constraints: d_exit(h) = a (H_cam - h) is where its top edge reaches the bottom row;
    # speed >= 0.45 d_exit keeps a fair part of it in the last visible frame; entering at
    # d_exit + span * speed <= f h / tall keeps it >= tall px high. Solved for the smallest h.
    a = f / (size[0] - cy)
    c = 1 + 0.45 * (span - 0.25)
    h_needed = a * c * camera.height / (f / tall + a * c)
    height = max(min(sprite.height_m, 0.6 * camera.height), h_needed)
    if height > 0.8 * camera.height:  # taller objects would not leave through the bottom
        h = 0.8 * camera.height
        longest = int((f * h / tall / (a * (camera.height - h)) - 1) / 0.45 + 0.25)
        raise ValueError(
            f"an anomaly cannot stay in view for {span} frames at size {size}, entering "
            f"{tall:g} px tall (seed {seed}: at most {longest} frames); use a larger size, a "
            "shorter enter..leave span or a smaller entry height")
    d_exit = a * (camera.height - height)
    s_min = 0.45 * d_exit
    s_max = (f * height / tall - d_exit) / (span - 0.25)
    # As fast as the span allows (it then enters small and far away), at most 2.5 m/frame
    # (90 km/h at 10 Hz) unless the exit needs more.
    speed = float(np.clip(s_max * arng.uniform(0.7, 1.0), s_min, max(s_min, 2.5)))
    d_leave = d_exit - 0.25 * speed  # camera-relative distance at leave_frame: out of view
    z = d_leave + leave_frame * speed  # world z (camera starts at 0)
    world = build_world(rng, n_frames * speed + 160.0, ego_speed=speed, ego_clear_z=z + 15.0,
                        camera=camera)
    # It enters through a gap in the parked cars, poles and people on its side (a driveway),
    # from a side where nothing nearer hides it completely while it slides in.
    first = int(arng.integers(2))
    sliding = range(enter_frame, min(enter_frame + SLIDE_FRAMES, leave_frame))
    for _ in range(4):
        placed = PlacedAnomaly(sprite, float(arng.uniform(-0.25, 0.25)), z, height)
        for side in ((-1, 1) if first == 0 else (1, -1)):
            gap = _clear_way_in(world, side, enter_frame * speed - 2.0, z + 2.0, sliding)
            plan = _Drive(gap, placed, speed, enter_frame, side)
            if all(rasterize(gap, size, k * speed, float(k), plan.anomaly_at(k, size))
                   .mask.any() for k in sliding):
                return plan
    raise ValueError(f"seed {seed}: the anomaly's way in is hidden behind other objects on "
                     f"both sides; choose another seed")


def _clear_way_in(world: World, side: int, z_from: float, z_to: float,
                  frames: range) -> World:
    """``world`` without the objects beside the ego lane on ``side`` that stand (or drive)
    between ``z_from`` and ``z_to`` during ``frames``."""
    lo, hi = world.ego_lane

    def in_gap(th) -> bool:
        if th.attached or not th.prims:
            return False
        beside = _centre_x(th) < lo if side < 0 else _centre_x(th) > hi
        return beside and any(z_from < th.z + th.speed * k < z_to for k in frames)

    return dataclasses.replace(world, objects=[th for th in world.objects if not in_gap(th)],
                               _compiled=None)


def _drive(plan: _Drive, seed: int, size: tuple[int, int], n_frames: int) -> list[Scene]:
    scenes = []
    for k in range(n_frames):
        cam_z = k * plan.speed
        anomaly = plan.anomaly_at(k, size)
        canvas = rasterize(plan.world, size, cam_z, float(k), anomaly)
        scenes.append(_finish(plan.world, canvas, seed, k, cam_z, anomaly))
    return scenes


@dataclass(frozen=True)
class DriveTruth:
    """Where a drive's anomaly stands, for measuring 3-D outputs against: ``camera`` (a level
    pinhole, no pitch: focal, horizon row and vanishing point column scale with the image
    size) and, per frame, the camera-relative ground contact of the sprite's centre in metres:
    ``lateral[k]`` to the right and ``distance[k]`` forward along the optical axis (the sprite
    stands upright, so every column of it touches the ground at that distance)."""

    camera: Camera
    lateral: tuple[float, ...]
    distance: tuple[float, ...]


def render_drive(seed: int, size: tuple[int, int], n_frames: int, enter_frame: int,
                 leave_frame: int, anomaly_kind: str = "any",
                 entry_height: int = 5) -> tuple[list[Scene], DriveTruth]:
    """``render_sequence``'s frames and the :class:`DriveTruth` of the same drive."""
    size = _check_drive(size, n_frames, enter_frame, leave_frame)
    plan = _plan_drive(seed, size, n_frames, enter_frame, leave_frame, anomaly_kind,
                       entry_height)
    placed = [plan.anomaly_at(k, size) for k in range(n_frames)]
    truth = DriveTruth(plan.world.camera, tuple(a.x for a in placed),
                       tuple(a.z - a.offset(k * plan.speed, float(k))
                             for k, a in enumerate(placed)))
    return _drive(plan, seed, size, n_frames), truth


def render_sequence(seed: int, size: tuple[int, int], n_frames: int, enter_frame: int,
                    leave_frame: int, anomaly_kind: str = "any",
                    entry_height: int = 5) -> list[Scene]:
    """A forward drive of ``n_frames`` frames through one street (layout fixed by ``seed``):
    buildings, poles and parked cars stream past consistently, traffic keeps its lanes, and
    an anomaly of ``anomaly_kind`` (``anomalies.random_sprite``) is in view exactly on frames
    ``enter_frame <= k < leave_frame``: it slides across an image border onto the road ahead
    (at least ``entry_height`` px tall when it appears), stays there while the car approaches,
    and leaves at the bottom. Raises ValueError when the span is too long to show at this
    resolution and entry height."""
    return render_drive(seed, size, n_frames, enter_frame, leave_frame, anomaly_kind,
                        entry_height)[0]


def scene_seed(seed: int, split: str, index: int) -> int:
    """The render seed of image ``index`` of ``split`` (splits never share scenes)."""
    state = np.random.SeedSequence([seed, zlib.crc32(split.encode()), index])
    return int(state.generate_state(1)[0])


def _png(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise OSError(f"PNG encoding failed for an array of shape {array.shape}")
    return buf.tobytes()


def _write(path: Path, data: bytes) -> None:
    # Rendered data is cheap to regenerate: atomic (never a half PNG), but not fsync-ed.
    atomic_write_bytes(path, data, sync=False)


def write_scene(root: Path, split: str, city: str, stem: str, scene: Scene) -> None:
    """Write one scene as Cityscapes files under ``root`` (labelIds, not trainIds)."""
    root = Path(root)
    _write(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
                  _png(cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR)))
    gt = root / "gtFine" / split / city
    _write(gt / f"{stem}_gtFine_labelIds.png", _png(TRAIN_ID_TO_ID[scene.train_ids]))
    _write(gt / f"{stem}_gtFine_anomalyMask.png",
                  _png(scene.anomaly_mask.astype(np.uint8) * 255))


def write_cityscapes_layout(root: str | Path, split: str, count: int, seed: int,
                            size: tuple[int, int] = (256, 512), anomaly_fraction: float = 0.0,
                            city: str = "synth", anomaly_kind: str = "any") -> list[str]:
    """Render ``count`` scenes into a Cityscapes tree at ``root`` and return their stems.

    Files: ``leftImg8bit/<split>/<city>/<city>_<i:06d>_000000_leftImg8bit.png`` (RGB),
    ``gtFine/<split>/<city>/..._gtFine_labelIds.png`` (Cityscapes labelIds; anomalies and void
    are 0 'unlabeled') and ``..._gtFine_anomalyMask.png`` (uint8 0/255), plus
    ``<root>/synthetic_<split>_<city>.json`` recording how they were made. Exactly
    ``round(anomaly_fraction * count)`` images contain an anomaly of ``anomaly_kind``.
    """
    size = _check_render_size(size)
    if count < 0 or not 0.0 <= anomaly_fraction <= 1.0:
        raise ValueError(f"need count >= 0 and 0 <= anomaly_fraction <= 1, got count={count}, "
                         f"anomaly_fraction={anomaly_fraction}")
    pick = np.random.default_rng([seed, zlib.crc32(split.encode())]).permutation(count)
    with_anomaly = pick < round(anomaly_fraction * count)
    records = []
    for i in tqdm(range(count), desc=f"synthetic {split}", unit="img"):
        stem = f"{city}_{i:06d}_000000"
        seed_i = scene_seed(seed, split, i)
        scene = render_scene(seed_i, size, anomaly=bool(with_anomaly[i]),
                             anomaly_kind=anomaly_kind)
        write_scene(Path(root), split, city, stem, scene)
        records.append({"stem": stem, "seed": seed_i,
                        "anomaly_pixels": int(scene.anomaly_mask.sum())})
    _write_meta(Path(root), split, city, {"kind": "scenes", "seed": seed, "size": list(size),
                                          "anomaly_fraction": anomaly_fraction,
                                          "anomaly_kind": anomaly_kind,
                                          "images": records})
    return [r["stem"] for r in records]


def write_sequence_layout(root: str | Path, split: str, count: int, seed: int,
                          size: tuple[int, int], n_frames: int, enter_frame: int,
                          leave_frame: int, city: str = "synthseq",
                          anomaly_kind: str = "any") -> list[str]:
    """Render ``count`` drives of ``n_frames`` frames as ``<city>_<seq:06d>_<frame:06d>``
    Cityscapes files (see :func:`write_cityscapes_layout`); the JSON record lists, per drive,
    the frames on which the anomaly is in view. Returns all stems."""
    size = _check_drive(size, n_frames, enter_frame, leave_frame)
    seeds = [scene_seed(seed, split, seq) for seq in range(count)]
    # plan every drive first, so an impossible request fails before anything is written
    plans = [_plan_drive(s, size, n_frames, enter_frame, leave_frame, anomaly_kind)
             for s in seeds]
    stems = []
    drives = []
    for seq in tqdm(range(count), desc=f"synthetic drives {split}", unit="drive"):
        seed_s = seeds[seq]
        scenes = _drive(plans[seq], seed_s, size, n_frames)
        for k, scene in enumerate(scenes):
            stem = f"{city}_{seq:06d}_{k:06d}"
            write_scene(Path(root), split, city, stem, scene)
            stems.append(stem)
        visible = [k for k, scene in enumerate(scenes) if scene.anomaly_mask.any()]
        drives.append({"sequence": seq, "seed": seed_s, "anomaly_frames": visible})
    _write_meta(Path(root), split, city, {"kind": "sequences", "seed": seed, "size": list(size),
                                          "n_frames": n_frames, "enter_frame": enter_frame,
                                          "leave_frame": leave_frame,
                                          "anomaly_kind": anomaly_kind, "drives": drives})
    return stems


def _write_meta(root: Path, split: str, city: str, meta: dict) -> None:
    _write(root / f"synthetic_{split}_{city}.json",
                  json.dumps(meta, indent=1).encode())
