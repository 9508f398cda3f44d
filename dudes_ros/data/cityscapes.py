"""Reader for data in the Cityscapes folder layout (the real dataset or the synthetic scenes).

Layout (``<stem>`` is ``<city>_<seq>_<frame>``)::

    <root>/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png      RGB image
    <root>/gtFine/<split>/<city>/<stem>_gtFine_labelIds.png       uint8 Cityscapes labelIds
    <root>/gtFine/<split>/<city>/<stem>_gtFine_anomalyMask.png    optional, uint8 0/255

Label ids are mapped to trainIds with the package's label table (void ids and the license plate
id -1 become 255). The whole file list is checked when the dataset is built, so a missing label
file stops training before the first step, not hours into it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from dudes_ros.errors import DudesError
from dudes_ros.labels import label_ids_to_train_ids

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
ANOMALY_SUFFIX = "_gtFine_anomalyMask.png"
CITYSCAPES_LAYOUT = ("<root>/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png with labels in "
          "<root>/gtFine/<split>/<city>/<stem>_gtFine_labelIds.png")


class DatasetLayoutError(DudesError, FileNotFoundError):
    """The folder does not follow the Cityscapes layout; the message says what was expected."""


def _read(path: Path, flags: int) -> np.ndarray:
    array = cv2.imread(str(path), flags)
    if array is None:
        raise DatasetLayoutError(f"cannot read image file {path}")
    return array


def read_image(path: Path) -> np.ndarray:
    """An RGB ``uint8 [H, W, 3]`` image."""
    return cv2.cvtColor(_read(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def read_single_channel(path: Path) -> np.ndarray:
    """A single-channel ``uint8 [H, W]`` PNG, refusing anything else."""
    array = _read(path, cv2.IMREAD_UNCHANGED)
    if array.ndim != 2 or array.dtype != np.uint8:
        raise DatasetLayoutError(f"{path} must be a single-channel 8-bit PNG, got shape "
                                 f"{array.shape} dtype {array.dtype}")
    return array


class CityscapesDataset(Dataset):
    """Items ``{"image": uint8 [H, W, 3], "labels": uint8 trainIds [H, W],
    "anomaly": bool [H, W] or None, "path": str}``, passed through ``transform(item)`` if given.
    """

    def __init__(self, root: str | Path, split: str,
                 transform: Callable[[dict], dict] | None = None) -> None:
        self.root = Path(root)
        self.split = split
        self.transform = transform
        image_dir = self.root / "leftImg8bit" / split
        label_dir = self.root / "gtFine" / split
        for folder in (image_dir, label_dir):
            if not folder.is_dir():
                raise DatasetLayoutError(f"{folder} does not exist; expected the Cityscapes "
                                         f"layout {CITYSCAPES_LAYOUT}")
        images = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
        if not images:
            raise DatasetLayoutError(f"no images found under {image_dir}; expected the "
                                     f"Cityscapes layout {CITYSCAPES_LAYOUT}")
        self.samples: list[tuple[Path, Path, Path | None]] = []
        for image in images:
            stem = image.name[: -len(IMAGE_SUFFIX)]
            city = image.parent.name
            label = label_dir / city / f"{stem}{LABEL_SUFFIX}"
            if not label.is_file():
                raise DatasetLayoutError(f"label file {label} for image {image} is missing; "
                                         f"expected the Cityscapes layout {CITYSCAPES_LAYOUT}")
            anomaly = label_dir / city / f"{stem}{ANOMALY_SUFFIX}"
            self.samples.append((image, label, anomaly if anomaly.is_file() else None))

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> dict:
        """The untransformed item ``index``."""
        image_path, label_path, anomaly_path = self.samples[index]
        image = read_image(image_path)
        label_ids = read_single_channel(label_path)
        if label_ids.shape != image.shape[:2]:
            raise DatasetLayoutError(f"{label_path} is {label_ids.shape} but its image "
                                     f"{image_path} is {image.shape[:2]}")
        anomaly = None
        if anomaly_path is not None:
            anomaly = read_single_channel(anomaly_path) > 0
            if anomaly.shape != image.shape[:2]:
                raise DatasetLayoutError(f"{anomaly_path} is {anomaly.shape} but its image "
                                         f"{image_path} is {image.shape[:2]}")
        return {"image": image, "labels": label_ids_to_train_ids(label_ids),
                "anomaly": anomaly, "path": str(image_path)}

    def __getitem__(self, index: int) -> dict:
        item = self.load(index)
        return self.transform(item) if self.transform is not None else item
