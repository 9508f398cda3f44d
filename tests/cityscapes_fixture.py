"""A tiny Cityscapes-layout folder for tests: simple street-like scenes with learnable colours.

Deliberately independent of ``dudes_ros.data.synthetic`` so reader and training tests pin the
reader's behaviour on files whose every pixel is known.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# Cityscapes labelIds used below and a colour each (RGB).
SKY, BUILDING, ROAD, SIDEWALK, CAR, POLE, UNLABELED = 23, 11, 7, 8, 26, 17, 0
COLOURS = {SKY: (70, 130, 180), BUILDING: (90, 80, 70), ROAD: (100, 100, 110),
           SIDEWALK: (200, 180, 190), CAR: (20, 30, 160), POLE: (230, 230, 40),
           UNLABELED: (0, 0, 0)}


def scene(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(RGB uint8 [H, W, 3], labelIds uint8 [H, W])`` of a random simple street scene."""
    h, w = size
    ids = np.full((h, w), SKY, np.uint8)
    horizon = int(h * rng.uniform(0.3, 0.5))
    ids[horizon // 2:horizon] = BUILDING
    ids[horizon:] = ROAD
    kerb = int(w * rng.uniform(0.1, 0.3))
    ids[horizon:, :kerb] = SIDEWALK
    cx, cw = int(rng.integers(0, w - w // 4)), w // 4
    ids[horizon + 2:min(h, horizon + h // 4), cx:cx + cw] = CAR
    px = int(rng.integers(0, w - 2))
    ids[horizon // 3:horizon + 4, px:px + 2] = POLE
    ids[h - 2:] = UNLABELED
    image = np.zeros((h, w, 3), np.float32)
    for label_id, colour in COLOURS.items():
        image[ids == label_id] = colour
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), ids


def write_layout(root: Path, split: str, count: int, seed: int = 0,
                 size: tuple[int, int] = (64, 128), city: str = "testcity",
                 anomaly: bool = False) -> list[Path]:
    """Write ``count`` scenes as Cityscapes files; returns the image paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        image, ids = scene(rng, size)
        stem = f"{city}_{i:06d}_000019"
        img_dir = root / "leftImg8bit" / split / city
        gt_dir = root / "gtFine" / split / city
        img_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        path = img_dir / f"{stem}_leftImg8bit.png"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(gt_dir / f"{stem}_gtFine_labelIds.png"), ids)
        if anomaly:
            mask = np.zeros(size, np.uint8)
            mask[size[0] // 2:, : size[1] // 8] = 255
            cv2.imwrite(str(gt_dir / f"{stem}_gtFine_anomalyMask.png"), mask)
        paths.append(path)
    return paths
