"""Synthetic street generator: determinism, classes, exact anomaly masks, drives, file layout."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from dudes_ros.cli import main
from dudes_ros.data.anomalies import (
    EXPOSURE_PHOTOS,
    HELD_OUT_PHOTOS,
    photo_sprites,
    procedural_sprite,
    random_sprite,
)
from dudes_ros.data.synthetic import (
    SLIDE_FRAMES,
    render_scene,
    render_sequence,
    scene_seed,
    write_cityscapes_layout,
    write_sequence_layout,
)
from dudes_ros.labels import IGNORE_INDEX, NAME_TO_TRAIN_ID, label_ids_to_train_ids

SIZE = (64, 128)


def test_same_seed_gives_identical_scenes():
    for anomaly in (False, True):
        a, b = render_scene(11, SIZE, anomaly), render_scene(11, SIZE, anomaly)
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.train_ids, b.train_ids)
        np.testing.assert_array_equal(a.anomaly_mask, b.anomaly_mask)
    assert a.image.shape == (*SIZE, 3) and a.image.dtype == np.uint8
    assert a.train_ids.shape == SIZE and a.train_ids.dtype == np.uint8
    assert a.anomaly_mask.shape == SIZE and a.anomaly_mask.dtype == bool


def test_different_seeds_differ():
    a, b = render_scene(1, SIZE), render_scene(2, SIZE)
    assert np.mean(a.image != b.image) > 0.5
    assert np.mean(a.train_ids != b.train_ids) > 0.1


def test_scene_layout_is_a_street():
    classes: set[int] = set()
    for seed in range(6):
        scene = render_scene(seed, SIZE)
        ids = scene.train_ids
        classes |= set(np.unique(ids).tolist())
        assert not scene.anomaly_mask.any()
        assert IGNORE_INDEX not in ids  # every pixel of a clean scene has a class
        assert ids[0, SIZE[1] // 2] in (NAME_TO_TRAIN_ID["sky"], NAME_TO_TRAIN_ID["building"])
        bottom = ids[-1]
        assert np.mean(bottom == NAME_TO_TRAIN_ID["road"]) > 0.25  # the road is under us
    wanted = {"road", "sidewalk", "building", "pole", "vegetation", "sky", "car", "terrain",
              "traffic sign", "traffic light", "person"}
    assert {NAME_TO_TRAIN_ID[n] for n in wanted} <= classes
    assert len(classes) >= 12


def test_anomaly_mask_covers_exactly_the_inserted_pixels():
    for seed in range(8):
        clean = render_scene(seed, SIZE)
        odd = render_scene(seed, SIZE, anomaly=True)
        mask = odd.anomaly_mask
        assert mask.sum() >= 10, seed
        np.testing.assert_array_equal(odd.image[~mask], clean.image[~mask])
        np.testing.assert_array_equal(odd.train_ids[~mask], clean.train_ids[~mask])
        assert (odd.train_ids[mask] == IGNORE_INDEX).all()
        changed = np.abs(odd.image[mask].astype(int) - clean.image[mask]).max(axis=1) > 8
        assert changed.mean() > 0.5, seed  # the masked pixels really were painted over


def test_anomaly_sources_load_offline():
    sprites = photo_sprites()
    assert {s.name for s in sprites} >= {"cat", "horse", "espresso", "rocket"}
    for sprite in sprites:
        assert sprite.rgb.dtype == np.uint8 and sprite.rgb.shape[:2] == sprite.alpha.shape
        assert 0.3 < sprite.alpha.mean() <= 1.0
    rng = np.random.default_rng(0)
    for _ in range(10):  # procedural textures are far more saturated than any street class
        sprite = procedural_sprite(rng)
        hsv = cv2.cvtColor(sprite.rgb, cv2.COLOR_RGB2HSV)
        assert np.median(hsv[..., 1][sprite.alpha]) > 200
        rgb, alpha = sprite.rasterize(17, 9)
        assert rgb.shape == (17, 9, 3) and alpha.shape == (17, 9) and alpha.dtype == bool


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sequence_anomaly_enters_and_leaves_on_the_stated_frames(seed):
    enter, leave = 3, 9
    frames = render_sequence(seed, SIZE, 12, enter, leave)
    areas = [int(f.anomaly_mask.sum()) for f in frames]
    assert [a > 0 for a in areas] == [enter <= k < leave for k in range(12)], areas
    assert max(areas) > 3 * areas[enter]  # it grows as the car approaches
    for f in frames:
        assert (f.train_ids[f.anomaly_mask] == IGNORE_INDEX).all()
    # temporally coherent: neighbouring frames are more alike than distant ones
    labels = np.stack([f.train_ids for f in frames])
    near = np.mean(labels[1:] != labels[:-1])
    far = np.mean(labels[-1] != labels[0])
    assert 0 < near < far


def test_sequence_anomaly_slides_in_across_an_image_border():
    frames = render_sequence(2, SIZE, 12, 3, 9, anomaly_kind="photo", entry_height=12)
    entering = frames[3].anomaly_mask
    assert entering[:, 0].any() or entering[:, -1].any()  # half across the border
    rows = np.flatnonzero(frames[3 + SLIDE_FRAMES].anomaly_mask.any(axis=1))
    assert rows[-1] - rows[0] + 1 >= 11  # entry_height px tall (give or take rounding)
    with pytest.raises(ValueError, match="entering 200 px tall"):
        render_sequence(2, SIZE, 12, 3, 9, entry_height=200)


@pytest.mark.parametrize("kind", ["photo", "procedural", "exposure", "held-out-photo"])
def test_anomaly_kind_picks_photos_or_procedural_shapes(kind):
    photos = {sprite.name for sprite in photo_sprites()}
    names = {random_sprite(np.random.default_rng(seed), kind).name for seed in range(40)}
    if kind == "photo":
        assert names <= photos and len(names) > 1
    elif kind == "procedural":
        assert names.isdisjoint(photos) and len(names) > 1
    elif kind == "exposure":  # procedural shapes and the exposure photos, never a held-out one
        assert names & photos == set(EXPOSURE_PHOTOS) and len(names - photos) > 1
    else:
        assert names == set(HELD_OUT_PHOTOS)
    with pytest.raises(ValueError, match="anomaly kind must be one of"):
        random_sprite(np.random.default_rng(0), "photos")


def test_photos_split_into_exposure_and_held_out():
    assert set(EXPOSURE_PHOTOS).isdisjoint(HELD_OUT_PHOTOS)
    assert set(EXPOSURE_PHOTOS) | set(HELD_OUT_PHOTOS) == {s.name for s in photo_sprites()}


def test_sequence_is_deterministic_and_validates_arguments():
    a = render_sequence(4, SIZE, 5, 1, 3)
    b = render_sequence(4, SIZE, 5, 1, 3)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.image, y.image)
    with pytest.raises(ValueError, match="enter_frame"):
        render_sequence(0, SIZE, 5, 3, 3)
    with pytest.raises(ValueError, match="enter_frame"):
        render_sequence(0, SIZE, 5, 1, 6)
    with pytest.raises(ValueError, match="larger size"):
        render_sequence(0, SIZE, 400, 0, 400)
    with pytest.raises(ValueError, match="size"):
        render_scene(0, (8, 128))


def test_written_layout_round_trips(tmp_path):
    stems = write_cityscapes_layout(tmp_path, "val", 3, seed=5, size=SIZE,
                                    anomaly_fraction=1 / 3)
    assert stems == [f"synth_{i:06d}_000000" for i in range(3)]
    meta = json.loads((tmp_path / "synthetic_val_synth.json").read_text())
    with_anomaly = 0
    for i, stem in enumerate(stems):
        record = meta["images"][i]
        assert record["seed"] == scene_seed(5, "val", i)
        scene = render_scene(record["seed"], SIZE, anomaly=record["anomaly_pixels"] > 0)
        image = cv2.imread(str(tmp_path / "leftImg8bit/val/synth" / f"{stem}_leftImg8bit.png"))
        np.testing.assert_array_equal(image[..., ::-1], scene.image)
        gt = tmp_path / "gtFine/val/synth"
        ids = cv2.imread(str(gt / f"{stem}_gtFine_labelIds.png"), cv2.IMREAD_UNCHANGED)
        assert ids.dtype == np.uint8 and ids.max() <= 33  # Cityscapes labelIds, not trainIds
        np.testing.assert_array_equal(label_ids_to_train_ids(ids), scene.train_ids)
        mask = cv2.imread(str(gt / f"{stem}_gtFine_anomalyMask.png"), cv2.IMREAD_UNCHANGED)
        assert set(np.unique(mask).tolist()) <= {0, 255}
        np.testing.assert_array_equal(mask > 0, scene.anomaly_mask)
        with_anomaly += bool(mask.any())
    assert with_anomaly == 1
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temp files


def test_written_layout_reads_back_through_the_cityscapes_reader(tmp_path):
    cityscapes = pytest.importorskip("dudes_ros.data.cityscapes")
    write_cityscapes_layout(tmp_path, "train", 2, seed=0, size=SIZE, anomaly_fraction=0.5)
    dataset = cityscapes.CityscapesDataset(tmp_path, "train")
    assert len(dataset) == 2
    items = [dataset[i] for i in range(2)]
    for i, item in enumerate(items):
        scene = render_scene(scene_seed(0, "train", i), SIZE, anomaly=bool(item["anomaly"].any()))
        np.testing.assert_array_equal(np.asarray(item["labels"]), scene.train_ids)
    assert sum(bool(item["anomaly"].any()) for item in items) == 1


def test_sequence_layout_and_cli(tmp_path, capsys):
    stems = write_sequence_layout(tmp_path / "a", "val", 1, seed=2, size=SIZE, n_frames=6,
                                  enter_frame=1, leave_frame=4)
    assert stems == [f"synthseq_000000_{k:06d}" for k in range(6)]
    meta = json.loads((tmp_path / "a/synthetic_val_synthseq.json").read_text())
    assert meta["drives"][0]["anomaly_frames"] == [1, 2, 3]
    assert main(["make-synthetic", str(tmp_path / "b"), "--split", "test", "--count", "2",
                 "--size", "64x128", "--anomaly-fraction", "0.5"]) == 0
    assert len(list((tmp_path / "b/leftImg8bit/test/synth").glob("*_leftImg8bit.png"))) == 2
    assert main(["make-synthetic", str(tmp_path / "c"), "--count", "1", "--size", "64x128",
                 "--sequence", "5", "--enter", "1", "--leave", "3"]) == 0
    assert len(list((tmp_path / "c/gtFine/train/synthseq").glob("*_anomalyMask.png"))) == 5
    assert main(["make-synthetic", str(tmp_path / "d"), "--size", "64x128",
                 "--sequence", "400", "--enter", "0", "--leave", "400"]) == 2
    assert "dudes make-synthetic: " in capsys.readouterr().err
