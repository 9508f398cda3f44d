"""``data.synthetic.render_drive``: the truth of where a drive's anomaly stands agrees with the
rendered pixels and the flat-ground model (``ground``), and ``render_sequence`` renders the
very same frames."""

from __future__ import annotations

import numpy as np

from dudes_ros.data.synthetic import render_drive, render_sequence
from dudes_ros.ground import CameraIntrinsics, FlatGround, project_to_ground

SIZE = (128, 256)
DRIVE = {"seed": 4, "size": SIZE, "n_frames": 20, "enter_frame": 6, "leave_frame": 14,
         "anomaly_kind": "held-out-photo", "entry_height": 16}


def test_the_truth_distance_is_where_the_mask_meets_the_road():
    scenes, truth = render_drive(**DRIVE)
    f, cx, cy = truth.camera.intrinsics(SIZE)
    camera = CameraIntrinsics(f, f, cx, cy, SIZE[1], SIZE[0])
    ground = FlatGround(truth.camera.height, 0.0, 1000.0)
    checked = 0
    for k, scene in enumerate(scenes):
        mask = scene.anomaly_mask
        if not mask.any() or mask[-1].any():  # not in view, or its foot is below the image
            continue
        rows = np.flatnonzero(mask.any(axis=1))
        # the sprite's box ends at round(cy + f H / d); a round silhouette (the held-out
        # photos are cut out with ellipses) may end a pixel or two above its box
        point = project_to_ground(camera, ground, np.array([cx]), np.array([rows[-1] + 0.5]))
        d = truth.distance[k]
        assert -0.5 <= cy + f * truth.camera.height / d - (rows[-1] + 1) <= 2.0
        assert abs(point[0, 2] - d) / d < 0.05
        checked += 1
    assert checked >= 4
    assert len(truth.distance) == len(truth.lateral) == DRIVE["n_frames"]


def test_render_sequence_is_render_drive_without_the_truth():
    a = render_sequence(**DRIVE)
    b, _ = render_drive(**DRIVE)
    assert all(np.array_equal(x.image, y.image) and np.array_equal(x.anomaly_mask, y.anomaly_mask)
               for x, y in zip(a, b, strict=True))
