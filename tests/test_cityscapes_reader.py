"""Cityscapes-layout reader: labelIds -> trainIds, anomaly masks, layout errors; transforms."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dudes_ros.data.cityscapes import CityscapesDataset, DatasetLayoutError
from dudes_ros.data.transforms import AugmentedDataset, RandomScaleCropFlip
from dudes_ros.labels import IGNORE_INDEX
from tests.cityscapes_fixture import CAR, ROAD, SKY, UNLABELED, write_layout


def test_items_are_rgb_with_train_ids(tmp_path: Path) -> None:
    paths = write_layout(tmp_path, "train", 2, seed=0, anomaly=True)
    ds = CityscapesDataset(tmp_path, "train")
    assert len(ds) == 2
    item = ds[0]
    assert item["path"] == str(paths[0])
    assert item["image"].shape == (64, 128, 3) and item["image"].dtype == np.uint8
    ids = cv2.imread(str(tmp_path / "gtFine/train/testcity/testcity_000000_000019_gtFine_"
                         "labelIds.png"), cv2.IMREAD_UNCHANGED)
    for label_id, train_id in ((SKY, 10), (ROAD, 0), (CAR, 13), (UNLABELED, IGNORE_INDEX)):
        assert (ids == label_id).any()
        assert np.all(item["labels"][ids == label_id] == train_id)
    # RGB order: the fixture's sky is (70, 130, 180) plus noise, so blue > red.
    sky = item["image"][ids == SKY].mean(axis=0)
    assert sky[2] > sky[0] + 60
    assert item["anomaly"].dtype == bool and item["anomaly"].sum() == 32 * 16


def test_label_id_mapping_covers_void_license_plate_and_unknown(tmp_path: Path) -> None:
    write_layout(tmp_path, "val", 1)
    label = tmp_path / "gtFine/val/testcity/testcity_000000_000019_gtFine_labelIds.png"
    ids = np.zeros((64, 128), np.uint8)
    # 7 road, 8 sidewalk, 33 bicycle, 9 parking (void in eval), 3 out of roi,
    # 255 = license plate id -1 as a byte, 200 unknown.
    values = [7, 8, 33, 9, 3, 255, 200]
    for i, v in enumerate(values):
        ids[:, i * 16:(i + 1) * 16] = v
    cv2.imwrite(str(label), ids)
    item = CityscapesDataset(tmp_path, "val")[0]
    got = [int(item["labels"][0, i * 16]) for i in range(len(values))]
    assert got == [0, 1, 18, 255, 255, 255, 255]
    assert item["anomaly"] is None


def test_missing_label_file_names_file_and_layout(tmp_path: Path) -> None:
    write_layout(tmp_path, "train", 3)
    missing = tmp_path / "gtFine/train/testcity/testcity_000001_000019_gtFine_labelIds.png"
    missing.unlink()
    with pytest.raises(DatasetLayoutError) as err:
        CityscapesDataset(tmp_path, "train")
    assert str(missing) in str(err.value)
    assert "<root>/gtFine/<split>/<city>/<stem>_gtFine_labelIds.png" in str(err.value)


def test_wrong_layout_names_folder_and_layout(tmp_path: Path) -> None:
    (tmp_path / "images" / "train").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError) as err:
        CityscapesDataset(tmp_path, "train")
    assert str(tmp_path / "leftImg8bit" / "train") in str(err.value)
    assert "expected the Cityscapes layout" in str(err.value)
    empty = tmp_path / "empty"
    (empty / "leftImg8bit" / "train").mkdir(parents=True)
    (empty / "gtFine" / "train").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="no images found"):
        CityscapesDataset(empty, "train")


def test_mismatched_label_size_and_rgb_label_refused(tmp_path: Path) -> None:
    write_layout(tmp_path, "train", 1)
    label = tmp_path / "gtFine/train/testcity/testcity_000000_000019_gtFine_labelIds.png"
    cv2.imwrite(str(label), np.zeros((32, 64), np.uint8))
    with pytest.raises(DatasetLayoutError, match=r"is \(32, 64\) but its image"):
        CityscapesDataset(tmp_path, "train")[0]
    cv2.imwrite(str(label), np.zeros((64, 128, 3), np.uint8))
    with pytest.raises(DatasetLayoutError, match="single-channel 8-bit"):
        CityscapesDataset(tmp_path, "train")[0]


def test_scale_pad_crop_flip() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    labels = np.full((40, 60), 3, np.uint8)
    aug = RandomScaleCropFlip((64, 128), scale_range=(1.0, 1.0), hflip=False)
    out_img, out_lbl = aug(image, labels, np.random.default_rng(1))
    assert out_img.shape == (64, 128, 3) and out_lbl.shape == (64, 128)
    # Scale 1 and a crop larger than the image: the image sits top-left, padding is 0 / 255.
    np.testing.assert_array_equal(out_img[:40, :60], image)
    assert (out_img[40:] == 0).all() and (out_img[:, 60:] == 0).all()
    assert (out_lbl[:40, :60] == 3).all() and (out_lbl[40:] == IGNORE_INDEX).all()
    assert (out_lbl[:, 60:] == IGNORE_INDEX).all()
    flipped = RandomScaleCropFlip((40, 60), (1.0, 1.0), hflip=True)
    seen = set()
    for seed in range(8):
        img, _ = flipped(image, labels, np.random.default_rng(seed))
        seen.add("flip" if np.array_equal(img, image[:, ::-1]) else
                 "same" if np.array_equal(img, image) else "other")
    assert seen == {"flip", "same"}
    scaled, lbl = RandomScaleCropFlip((16, 16), (2.0, 2.0), False)(
        image, labels, np.random.default_rng(0))
    assert scaled.shape == (16, 16, 3) and set(np.unique(lbl)) == {3}


def test_augmentation_depends_only_on_seed_epoch_index(tmp_path: Path) -> None:
    write_layout(tmp_path, "train", 3)
    ds = CityscapesDataset(tmp_path, "train")
    aug = RandomScaleCropFlip((32, 64))
    a, b = AugmentedDataset(ds, aug, seed=5), AugmentedDataset(ds, aug, seed=5)
    b.set_epoch(1)
    b.set_epoch(0)
    np.testing.assert_array_equal(a[2]["image"], b[2]["image"])
    np.testing.assert_array_equal(a[2]["labels"], b[2]["labels"])
    a.set_epoch(1)
    assert not np.array_equal(a[2]["image"], b[2]["image"])


def test_outlier_class_relabels_exactly_the_anomaly_mask(tmp_path: Path) -> None:
    write_layout(tmp_path, "train", 1, anomaly=True)
    ds = CityscapesDataset(tmp_path, "train")
    item = ds[0]
    identity = RandomScaleCropFlip((64, 128), (1.0, 1.0), hflip=False)
    plain = AugmentedDataset(ds, identity, seed=0)[0]["labels"]
    exposed = AugmentedDataset(ds, identity, seed=0, outlier_class=17)[0]["labels"]
    np.testing.assert_array_equal(plain, item["labels"])
    assert (exposed[item["anomaly"]] == 17).all() and item["anomaly"].sum() > 0
    np.testing.assert_array_equal(exposed[~item["anomaly"]], plain[~item["anomaly"]])
