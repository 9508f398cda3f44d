"""The label table against the official cityscapesscripts table, entry by entry."""

import numpy as np
import pytest
from cityscapesscripts.helpers import labels as official

from dudes_ros import labels


def test_table_matches_cityscapesscripts_entry_by_entry():
    assert len(labels.LABELS) == len(official.labels) == 35
    for ours, theirs in zip(labels.LABELS, official.labels, strict=True):
        assert ours.name == theirs.name
        assert ours.id == theirs.id
        assert ours.train_id == theirs.trainId
        assert ours.category == theirs.category
        assert ours.category_id == theirs.categoryId
        assert ours.has_instances == theirs.hasInstances
        assert ours.ignore_in_eval == theirs.ignoreInEval
        assert ours.color == theirs.color


def test_derived_lookups():
    assert labels.NUM_CLASSES == 19
    assert labels.CLASS_NAMES[0] == "road" and labels.CLASS_NAMES[18] == "bicycle"
    assert labels.NAME_TO_TRAIN_ID["car"] == 13
    ids = np.array([[7, 8, 0, 26], [33, 255, 34, 9]], dtype=np.uint8)
    train = labels.label_ids_to_train_ids(ids)
    assert train.tolist() == [[0, 1, 255, 13], [18, 255, 255, 255]]
    assert labels.train_ids_to_label_ids(train).tolist() == [[7, 8, 0, 26], [33, 0, 0, 0]]
    rgb = labels.colorize(np.array([[0, 255]], dtype=np.uint8))
    assert rgb.tolist() == [[[128, 64, 128], [0, 0, 0]]]


def test_every_official_id_maps_to_its_train_id():
    for lb in official.labels:
        if lb.id < 0:  # the license plate has no pixel value; it is void in trainIds
            continue
        expected = lb.trainId if 0 <= lb.trainId < 255 else 255
        assert labels.ID_TO_TRAIN_ID[lb.id] == expected, lb.name


def test_wrong_dtype_is_refused_with_the_dtype_named():
    with pytest.raises(TypeError, match="int32"):
        labels.label_ids_to_train_ids(np.zeros((2, 2), dtype=np.int32))


def test_manifest_records():
    records = labels.as_manifest()
    assert len(records) == 19
    assert records[13] == {"train_id": 13, "id": 26, "name": "car", "color": [0, 0, 142]}


def test_colorize_lookup_equals_the_palette_for_every_id():
    from dudes_ros.labels import TRAIN_ID_PALETTE, colorize

    ids = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(colorize(ids), TRAIN_ID_PALETTE[ids])
    batch = np.stack([ids, ids.T])
    np.testing.assert_array_equal(colorize(batch), TRAIN_ID_PALETTE[batch])
