"""Reader for public road-anomaly benchmarks: a folder of images plus one OOD mask per image.

The layout Fishyscapes Lost & Found and Road Anomaly are commonly distributed in (and the
SegmentMeIfYouCan validation sets)::

    <root>/images/<name>.png|.jpg          RGB image     (also accepted: original/)
    <root>/labels/<name>.png               uint8 mask    (also: labels_masks/, masks/)

A mask belongs to the image of the same relative path and stem, or to the image whose stem
begins its own followed by ``_`` (``validation0000_labels_semantic.png`` for
``validation0000.jpg``). Mask values: 1 = anomaly, 0 = in-distribution, 255 = void (not
scored); any other value is refused, naming the file, since benchmarks ship other codings
(e.g. Road Anomaly's raw 0/2) that must be mapped first.

There are no class labels, so an item's ``labels`` only say which pixels are void (255) and
which are scored (0); it feeds the OOD metrics, not the segmentation ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dudes_ros.data.cityscapes import DatasetLayoutError, read_image, read_single_channel
from dudes_ros.files import IMAGE_SUFFIXES
from dudes_ros.labels import IGNORE_INDEX

IMAGE_DIRS = ("images", "original")
MASK_DIRS = ("labels", "labels_masks", "masks")
ANOMALY, IN_DISTRIBUTION, VOID = 1, 0, 255
ANOMALY_BENCHMARK_LAYOUT = ("<root>/images/<name>.png|.jpg with masks <root>/labels/<name>.png "
          "(1 = anomaly, 0 = in-distribution, 255 = void), as Fishyscapes Lost & Found and "
          "Road Anomaly are distributed")


def _find_dir(root: Path, names: tuple[str, ...], what: str) -> Path:
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise DatasetLayoutError(f"{root} has no {what} folder ({' or '.join(names)}); expected "
                             f"{ANOMALY_BENCHMARK_LAYOUT}")


class AnomalyBenchmark:
    """Items ``{"image": uint8 [H, W, 3], "labels": uint8 [H, W] (255 void, 0 scored),
    "anomaly": bool [H, W], "path": str}``; the whole file list is paired when built."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetLayoutError(f"anomaly data {self.root} is not a folder; expected "
                                     f"{ANOMALY_BENCHMARK_LAYOUT}")
        image_dir = _find_dir(self.root, IMAGE_DIRS, "image")
        mask_dir = _find_dir(self.root, MASK_DIRS, "mask")
        images = sorted(p for p in image_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DatasetLayoutError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under "
                                     f"{image_dir}; expected {ANOMALY_BENCHMARK_LAYOUT}")
        self.samples: list[tuple[Path, Path]] = []
        for image in images:
            folder = mask_dir / image.parent.relative_to(image_dir)
            candidates = [folder / f"{image.stem}.png",
                          *sorted(folder.glob(f"{image.stem}_*.png"))]
            mask = next((c for c in candidates if c.is_file()), None)
            if mask is None:
                raise DatasetLayoutError(f"no mask for image {image}: expected "
                                         f"{folder / (image.stem + '.png')} (or "
                                         f"{image.stem}_*.png there)")
            self.samples.append((image, mask))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        image_path, mask_path = self.samples[index]
        image = read_image(image_path)
        mask = read_single_channel(mask_path)
        if mask.shape != image.shape[:2]:
            raise DatasetLayoutError(f"mask {mask_path} is {mask.shape} but its image "
                                     f"{image_path} is {image.shape[:2]}")
        values = np.unique(mask)
        unknown = [int(v) for v in values if v not in (ANOMALY, IN_DISTRIBUTION, VOID)]
        if unknown:
            raise DatasetLayoutError(f"mask {mask_path} holds value(s) {unknown}; expected "
                                     "1 = anomaly, 0 = in-distribution, 255 = void")
        labels = np.where(mask == VOID, IGNORE_INDEX, 0).astype(np.uint8)
        return {"image": image, "labels": labels, "anomaly": mask == ANOMALY,
                "path": str(image_path)}
