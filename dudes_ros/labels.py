"""The Cityscapes label table: the one place where ids, trainIds, names and colours live.

Every lookup the package uses (labelId -> trainId, trainId -> colour, class names) is derived
from ``LABELS`` below, which mirrors ``cityscapesscripts.helpers.labels`` entry by entry (a test
cross-checks it). ``IGNORE_INDEX`` (255) marks void pixels in trainId images.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np


class Label(NamedTuple):
    """One row of the Cityscapes table."""

    name: str
    id: int
    train_id: int
    category: str
    category_id: int
    has_instances: bool
    ignore_in_eval: bool
    color: tuple[int, int, int]


IGNORE_INDEX = 255

LABELS: tuple[Label, ...] = (
    Label("unlabeled", 0, 255, "void", 0, False, True, (0, 0, 0)),
    Label("ego vehicle", 1, 255, "void", 0, False, True, (0, 0, 0)),
    Label("rectification border", 2, 255, "void", 0, False, True, (0, 0, 0)),
    Label("out of roi", 3, 255, "void", 0, False, True, (0, 0, 0)),
    Label("static", 4, 255, "void", 0, False, True, (0, 0, 0)),
    Label("dynamic", 5, 255, "void", 0, False, True, (111, 74, 0)),
    Label("ground", 6, 255, "void", 0, False, True, (81, 0, 81)),
    Label("road", 7, 0, "flat", 1, False, False, (128, 64, 128)),
    Label("sidewalk", 8, 1, "flat", 1, False, False, (244, 35, 232)),
    Label("parking", 9, 255, "flat", 1, False, True, (250, 170, 160)),
    Label("rail track", 10, 255, "flat", 1, False, True, (230, 150, 140)),
    Label("building", 11, 2, "construction", 2, False, False, (70, 70, 70)),
    Label("wall", 12, 3, "construction", 2, False, False, (102, 102, 156)),
    Label("fence", 13, 4, "construction", 2, False, False, (190, 153, 153)),
    Label("guard rail", 14, 255, "construction", 2, False, True, (180, 165, 180)),
    Label("bridge", 15, 255, "construction", 2, False, True, (150, 100, 100)),
    Label("tunnel", 16, 255, "construction", 2, False, True, (150, 120, 90)),
    Label("pole", 17, 5, "object", 3, False, False, (153, 153, 153)),
    Label("polegroup", 18, 255, "object", 3, False, True, (153, 153, 153)),
    Label("traffic light", 19, 6, "object", 3, False, False, (250, 170, 30)),
    Label("traffic sign", 20, 7, "object", 3, False, False, (220, 220, 0)),
    Label("vegetation", 21, 8, "nature", 4, False, False, (107, 142, 35)),
    Label("terrain", 22, 9, "nature", 4, False, False, (152, 251, 152)),
    Label("sky", 23, 10, "sky", 5, False, False, (70, 130, 180)),
    Label("person", 24, 11, "human", 6, True, False, (220, 20, 60)),
    Label("rider", 25, 12, "human", 6, True, False, (255, 0, 0)),
    Label("car", 26, 13, "vehicle", 7, True, False, (0, 0, 142)),
    Label("truck", 27, 14, "vehicle", 7, True, False, (0, 0, 70)),
    Label("bus", 28, 15, "vehicle", 7, True, False, (0, 60, 100)),
    Label("caravan", 29, 255, "vehicle", 7, True, True, (0, 0, 90)),
    Label("trailer", 30, 255, "vehicle", 7, True, True, (0, 0, 110)),
    Label("train", 31, 16, "vehicle", 7, True, False, (0, 80, 100)),
    Label("motorcycle", 32, 17, "vehicle", 7, True, False, (0, 0, 230)),
    Label("bicycle", 33, 18, "vehicle", 7, True, False, (119, 11, 32)),
    Label("license plate", -1, -1, "vehicle", 7, False, True, (0, 0, 142)),
)

TRAIN_LABELS: tuple[Label, ...] = tuple(
    sorted((lb for lb in LABELS if 0 <= lb.train_id < IGNORE_INDEX), key=lambda lb: lb.train_id)
)
NUM_CLASSES = len(TRAIN_LABELS)
CLASS_NAMES: tuple[str, ...] = tuple(lb.name for lb in TRAIN_LABELS)
NAME_TO_TRAIN_ID: dict[str, int] = {lb.name: lb.train_id for lb in TRAIN_LABELS}


def _id_to_train_id_lut() -> np.ndarray:
    # Every byte value maps somewhere: unknown ids and the license plate (-1 -> 255 as uint8)
    # become IGNORE_INDEX, so a corrupt label file can never produce an out-of-range class.
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for lb in LABELS:
        if lb.id >= 0:
            lut[lb.id] = lb.train_id if 0 <= lb.train_id < IGNORE_INDEX else IGNORE_INDEX
    return lut


def _train_id_to_id_lut() -> np.ndarray:
    lut = np.zeros(256, dtype=np.uint8)  # ignore -> 0 ("unlabeled")
    for lb in TRAIN_LABELS:
        lut[lb.train_id] = lb.id
    return lut


def _palette() -> np.ndarray:
    pal = np.zeros((256, 3), dtype=np.uint8)  # ignore and unknown -> black
    for lb in TRAIN_LABELS:
        pal[lb.train_id] = lb.color
    return pal


ID_TO_TRAIN_ID: np.ndarray = _id_to_train_id_lut()
"""uint8 [256]: Cityscapes labelId -> trainId (255 for void and unknown ids)."""
TRAIN_ID_TO_ID: np.ndarray = _train_id_to_id_lut()
"""uint8 [256]: trainId -> labelId (255 and unknown -> 0, 'unlabeled')."""
TRAIN_ID_PALETTE: np.ndarray = _palette()
"""uint8 [256, 3]: trainId -> RGB colour (255 -> black)."""
_PALETTE_LUT = np.ascontiguousarray(TRAIN_ID_PALETTE.reshape(256, 1, 3))  # cv2.LUT's layout


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map a labelId image ``uint8 [H, W]`` to trainIds ``uint8 [H, W]``."""
    if label_ids.dtype != np.uint8:
        raise TypeError(f"labelId image must be uint8, got {label_ids.dtype}")
    return ID_TO_TRAIN_ID[label_ids]


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Map a trainId image ``uint8 [H, W]`` back to Cityscapes labelIds ``uint8 [H, W]``."""
    if train_ids.dtype != np.uint8:
        raise TypeError(f"trainId image must be uint8, got {train_ids.dtype}")
    return TRAIN_ID_TO_ID[train_ids]


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """trainIds ``uint8 [..., H, W]`` -> RGB ``uint8 [..., H, W, 3]`` (ignore is black)."""
    if train_ids.ndim == 2 and train_ids.dtype == np.uint8:
        # OpenCV's table lookup over a 3-channel copy of the ids is several times faster than
        # numpy's fancy indexing (BENCHMARKS.md, full-resolution node).
        return cv2.LUT(cv2.merge((train_ids, train_ids, train_ids)), _PALETTE_LUT)
    return TRAIN_ID_PALETTE[train_ids]


def as_manifest() -> list[dict]:
    """The train classes as JSON-ready records for model manifests and checkpoints."""
    return [{"train_id": lb.train_id, "id": lb.id, "name": lb.name, "color": list(lb.color)}
            for lb in TRAIN_LABELS]
