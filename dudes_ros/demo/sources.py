"""What the demo plays as a camera: a synthetic drive, frames of a bag topic, or image files.

A :class:`Drive` yields RGB ``uint8 [H, W, 3]`` frames lazily (a bag or folder is never held in
memory at once) and, for the synthetic drive only, the ground truth of when the anomaly was in
view, which the summary compares the alarm against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dudes_ros.files import IMAGE_SUFFIXES


@dataclass(frozen=True)
class Drive:
    """``count`` frames from ``frames()``; ``in_view[i]`` says whether the anomaly is visible
    in frame i (None when there is no ground truth); ``details`` goes into summary.json."""

    name: str
    count: int
    frames: Callable[[], Iterator[np.ndarray]]
    in_view: tuple[bool, ...] | None = None
    details: dict = field(default_factory=dict)


ENTRY_HEIGHT = 1 / 6  # the anomaly is at least this fraction of the image height when it enters


def synthetic_drive(seed: int = 4, size: tuple[int, int] = (256, 512), n_frames: int = 72,
                    enter_frame: int = 24, leave_frame: int = 48) -> Drive:
    """A street drive from ``render_sequence`` in which a real-photo anomaly no recipe trains
    on (``anomalies.HELD_OUT_PHOTOS``) slides onto the road at ``enter_frame`` (at least
    ``ENTRY_HEIGHT`` of the image tall: big enough to see at the model's input size) and
    leaves at ``leave_frame``; ``in_view`` comes from the rendered
    anomaly masks (a frame counts when at least one pixel of the anomaly is visible)."""
    from dudes_ros.data.synthetic import render_sequence

    if not 0 <= enter_frame < leave_frame <= n_frames:
        raise ValueError(f"the anomaly must enter and leave inside the drive: expected "
                         f"0 <= enter ({enter_frame}) < leave ({leave_frame}) <= frames "
                         f"({n_frames})")
    scenes = render_sequence(seed, size=size, n_frames=n_frames, enter_frame=enter_frame,
                             leave_frame=leave_frame, anomaly_kind="held-out-photo",
                             entry_height=round(size[0] * ENTRY_HEIGHT))
    images = [np.ascontiguousarray(scene.image) for scene in scenes]
    in_view = tuple(bool(scene.anomaly_mask.any()) for scene in scenes)
    return Drive(f"synthetic drive (seed {seed}, {size[0]}x{size[1]})", len(images),
                 lambda: iter(images), in_view,
                 {"source": "synthetic", "seed": seed, "size": list(size),
                  "frames": n_frames, "enter_frame": enter_frame, "leave_frame": leave_frame})


def bag_drive(path: str | Path, topic: str | None = None, max_frames: int = 0) -> Drive:
    """The frames of one image topic of a bag (rosbag2 sqlite3/MCAP or ROS 1), in bag order.

    ``topic`` may be omitted when the bag has exactly one image topic. Frames the conversions
    refuse (unsupported encoding, truncated data) raise ``ValueError`` naming the message.
    """
    from dudes_ros.bag.reader import BagError, BagReader
    from dudes_ros.messages.conversions import ImageRejected, compressed_to_rgb, image_to_rgb

    path = Path(path)
    with BagReader(path) as bag:
        chosen = bag.select_image_topics([topic] if topic else None)
    if len(chosen) > 1:
        raise BagError(f"{path}: has several image topics {[t.topic for t in chosen]}; "
                       "choose one with --topic")
    image_topic = chosen[0]
    count = min(image_topic.count, max_frames) if max_frames > 0 else image_topic.count

    def frames() -> Iterator[np.ndarray]:
        with BagReader(path) as bag:
            for index, message in enumerate(bag.messages([image_topic.topic])):
                if index >= count:
                    return
                msg = bag.deserialize(message)
                try:
                    yield (compressed_to_rgb(msg) if image_topic.compressed
                           else image_to_rgb(msg))
                except ImageRejected as exc:
                    raise ValueError(f"{path}: message {index} on {image_topic.topic} cannot be "
                                     f"played: {exc}") from exc

    return Drive(f"{path.name} {image_topic.topic}", count, frames, None,
                 {"source": "bag", "bag": str(path), "topic": image_topic.topic})


def image_folder_drive(folder: str | Path, max_frames: int = 0) -> Drive:
    """The image files of ``folder`` (``IMAGE_SUFFIXES``) in name order, as RGB frames."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"--images {folder}: not a directory; expected a folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"--images {folder}: no image files; expected names ending in "
                         f"{', '.join(IMAGE_SUFFIXES)}")
    if max_frames > 0:
        files = files[:max_frames]

    def frames() -> Iterator[np.ndarray]:
        for file in files:
            bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"{file}: OpenCV cannot read it; expected one of "
                                 f"{', '.join(IMAGE_SUFFIXES)}")
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    return Drive(f"images in {folder}", len(files), frames, None,
                 {"source": "images", "folder": str(folder), "first": files[0].name,
                  "last": files[-1].name})
