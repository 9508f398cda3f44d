"""Training augmentation (random scale, pad, crop, horizontal flip) with reproducible seeding.

Every random draw for a sample comes from ``numpy.random.default_rng([seed, epoch, index])``,
so an augmented crop depends only on (seed, epoch, sample index): not on the number of loader
workers, which worker got the sample, or whether training was resumed in the middle of an
epoch. That is what makes a resumed run bitwise identical to an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from torch.utils.data import Dataset

from dudes_ros.labels import IGNORE_INDEX


@dataclass(frozen=True)
class RandomScaleCropFlip:
    """Random scale in ``scale_range``, pad to ``crop_size`` (image 0, labels 255), random crop,
    horizontal flip with probability 0.5. ``crop_size`` is (height, width)."""

    crop_size: tuple[int, int]
    scale_range: tuple[float, float] = (0.5, 2.0)
    hflip: bool = True

    def __call__(self, image: np.ndarray, labels: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``image uint8 [H, W, 3]``, ``labels uint8 [H, W]`` -> the same at ``crop_size``."""
        scale = rng.uniform(*self.scale_range)
        h, w = labels.shape
        size = (max(1, round(w * scale)), max(1, round(h * scale)))  # cv2 wants (width, height)
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
        ch, cw = self.crop_size
        pad_h, pad_w = max(ch - labels.shape[0], 0), max(cw - labels.shape[1], 0)
        if pad_h or pad_w:
            image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=0)
            labels = np.pad(labels, ((0, pad_h), (0, pad_w)), constant_values=IGNORE_INDEX)
        top = int(rng.integers(0, labels.shape[0] - ch + 1))
        left = int(rng.integers(0, labels.shape[1] - cw + 1))
        image = image[top:top + ch, left:left + cw]
        labels = labels[top:top + ch, left:left + cw]
        if self.hflip and rng.random() < 0.5:
            image, labels = image[:, ::-1], labels[:, ::-1]
        return np.ascontiguousarray(image), np.ascontiguousarray(labels)


class AugmentedDataset(Dataset):
    """Training view of a dataset: items ``{"image": uint8 [h, w, 3], "labels": uint8 [h, w]}``
    at the crop size, seeded per (seed, epoch, index). Call ``set_epoch`` before each epoch's
    loader iterator is created (loader workers must not be persistent).

    ``outlier_class``: label the pixels of an item's anomaly mask with this trainId before
    augmenting (outlier exposure; items without a mask are unchanged). None: keep the labels.
    """

    def __init__(self, dataset: Dataset, augment: RandomScaleCropFlip, seed: int,
                 outlier_class: int | None = None) -> None:
        self.dataset = dataset
        self.augment = augment
        self.seed = seed
        self.outlier_class = outlier_class
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = self.dataset[index]
        labels, anomaly = item["labels"], item.get("anomaly")
        if self.outlier_class is not None and anomaly is not None:
            labels = np.where(anomaly, np.uint8(self.outlier_class), labels)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image, labels = self.augment(item["image"], labels, rng)
        return {"image": image, "labels": labels}


class EvalView(Dataset):
    """Validation view: full-resolution ``{"image": uint8 [H, W, 3], "labels": uint8 [H, W]}``
    (drops the optional anomaly mask and path so default collation works)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = self.dataset[index]
        return {"image": item["image"], "labels": item["labels"]}
