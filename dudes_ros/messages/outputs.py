"""The output messages of one frame, as ``rosbags`` dataclasses of ROS 2 Kilted types.

Both the node (which publishes them as CDR bytes) and ``dudes process-bag`` (which writes them
to a bag) build their outputs here, so the two agree message for message. Topic names and
contents (DESIGN §3.3), relative to the camera namespace: ``segmentation`` (mono8 trainIds),
``segmentation/color`` (rgb8 palette, optional), ``uncertainty`` (32FC1),
``uncertainty/color`` (rgb8 inferno heat map, optional), ``confidence`` (mono8,
255 = certain), ``ood`` (diagnostic_msgs/DiagnosticArray), ``ood_alarm`` (std_msgs/Bool) and
where the anomalies are (``messages.regions``: ``ood/mask``, ``ood/regions``, ``ood/points``),
every one stamped with the input image's header.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from rosbags.typesys.store import Typestore

from dudes_ros.anomaly_locator import Located
from dudes_ros.anomaly_regions import paint_class
from dudes_ros.labels import colorize
from dudes_ros.messages.conversions import array_to_image_fields
from dudes_ros.messages.regions import (
    REGION_TOPICS,
    mask_message,
    points_message,
    regions_message,
)
from dudes_ros.messages.types import BOOL, DIAGNOSTIC_ARRAY, IMAGE
from dudes_ros.perception import FrameResult

# topic suffix -> message type, in the order messages are written for a frame
OUTPUT_TOPICS: dict[str, str] = {
    "segmentation": IMAGE,
    "segmentation/color": IMAGE,
    "uncertainty": IMAGE,
    "uncertainty/color": IMAGE,
    "confidence": IMAGE,
    "ood": DIAGNOSTIC_ARRAY,
    "ood_alarm": BOOL,
    **REGION_TOPICS,
}
IMAGE_TOPICS = frozenset(name for name, msgtype in OUTPUT_TOPICS.items() if msgtype == IMAGE)
# Built only when asked for (the node: while subscribed); ood and ood_alarm always are.
ON_DEMAND = IMAGE_TOPICS | frozenset(REGION_TOPICS)
COLOR_TOPICS = frozenset({"segmentation/color", "uncertainty/color"})
DEFAULT_ON_DEMAND = ON_DEMAND - COLOR_TOPICS  # what a bag gets unless colour is asked for

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels
NODE_NAME = "dudes_node"  # offline outputs; the live node passes its fully qualified name


def output_topic(namespace: str, suffix: str) -> str:
    """``/cam_front`` + ``segmentation`` -> ``/cam_front/segmentation``."""
    return f"{namespace.rstrip('/')}/{suffix}"


def heat_map(uncertainty: np.ndarray) -> np.ndarray:
    """RGB ``uint8 [H, W, 3]`` inferno heat map of ``float [H, W]`` u in [0, 1]."""
    u = np.asarray(uncertainty, dtype=np.float32)
    # One OpenCV pass scales, rounds half to even (as np.rint) and saturates to [0, 255].
    scaled = cv2.addWeighted(u, 255.0, u, 0.0, 0.0, dtype=cv2.CV_8U)
    return cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def ood_level(result: FrameResult) -> int:
    """ERROR while the debounced alarm is raised, WARN for a frame over threshold, else OK
    (against the thresholds the frame was scored with)."""
    if result.alarm:
        return ERROR
    return WARN if result.ood_score > result.ood.frame_threshold else OK


def ood_values(result: FrameResult) -> dict[str, str]:
    """Key/value pairs of the ``ood`` diagnostic status (the node's keys, in its order);
    ``score`` and ``uncertain_fraction`` are both the frame OOD score (the DESIGN's "frame OOD
    score" and "uncertain-pixel fraction" are one number here)."""
    ood = result.ood
    return {
        "score": f"{result.ood_score:.6f}",
        "threshold": f"{ood.frame_threshold:.6f}",
        "uncertain_fraction": f"{result.ood_score:.6f}",
        "alarm": str(result.alarm).lower(),
        "pixel_threshold": f"{ood.pixel_threshold:.6f}",
    }


@dataclass
class OutputBuilder:
    """Builds the output messages of one frame with the types of ``typestore``. ``outputs``
    names the on-demand outputs to build (``ON_DEMAND``; the node passes those someone
    subscribes to, so the others cost neither a conversion nor a copy); ``ood`` and
    ``ood_alarm`` are always built. ``node_name`` prefixes the ``ood`` and region status
    names. Thresholds in the ``ood`` message are the frame's own (``FrameResult.ood``).
    ``segmentation_class`` >= 0 writes anomalous pixels (``Located``'s mask) into
    ``segmentation`` under that class id, for nav2's semantic_segmentation_layer; -1 = off."""

    typestore: Typestore
    outputs: frozenset[str] = DEFAULT_ON_DEMAND
    node_name: str = NODE_NAME
    segmentation_class: int = -1

    def __post_init__(self) -> None:
        unknown = sorted(set(self.outputs) - ON_DEMAND)
        if unknown:
            raise ValueError(f"unknown on-demand output(s) {unknown}; expected some of "
                             f"{sorted(ON_DEMAND)}")

    @property
    def needs_regions(self) -> bool:
        """Whether a frame's messages need its ``Located`` anomalies."""
        return bool(self.outputs & set(REGION_TOPICS)) or (
            self.segmentation_class >= 0 and bool(self.outputs & {"segmentation",
                                                                   "segmentation/color"}))

    def topics(self, namespace: str) -> dict[str, str]:
        """``{topic: msgtype}`` this builder writes for a camera namespace."""
        return {output_topic(namespace, suffix): OUTPUT_TOPICS[suffix]
                for suffix in self.names()}

    def header(self, header: Any) -> Any:
        """A ROS 2 header with the input's stamp and frame id (ROS 1 headers drop ``seq``)."""
        types = self.typestore.types
        stamp = types["builtin_interfaces/msg/Time"](sec=int(header.stamp.sec),
                                                     nanosec=int(header.stamp.nanosec))
        return types["std_msgs/msg/Header"](stamp=stamp, frame_id=str(header.frame_id))

    def _image(self, header: Any, array: np.ndarray, encoding: str) -> Any:
        return self.typestore.types[IMAGE](header=header,
                                           **array_to_image_fields(array, encoding))

    def names(self) -> list[str]:
        """The outputs this builder writes, in ``OUTPUT_TOPICS`` order."""
        return [name for name in OUTPUT_TOPICS if name not in ON_DEMAND or name in self.outputs]

    def message(self, name: str, header: Any, camera: str, result: FrameResult,
                located: Located | None = None) -> Any | None:
        """Output ``name`` (an ``OUTPUT_TOPICS`` key) of one frame, built now; ``header`` is a
        ROS 2 header as ``header`` makes it; ``located``: the frame's anomalies, needed when
        ``needs_regions``. None for ``ood/points`` when the frame has no geometry (nothing is
        published then). Different outputs of one frame may be built in different threads."""
        types = self.typestore.types
        if name == "ood":
            level = ood_level(result)
            text = {OK: "in distribution", WARN: "frame over OOD threshold", ERROR: "OOD alarm"}
            values = [types["diagnostic_msgs/msg/KeyValue"](key=k, value=v)
                      for k, v in ood_values(result).items()]
            status = types["diagnostic_msgs/msg/DiagnosticStatus"](
                level=level, name=f"{self.node_name}: ood", message=text[level],
                hardware_id=camera, values=values)
            return types[DIAGNOSTIC_ARRAY](header=header, status=[status])
        if name == "ood_alarm":
            return types[BOOL](data=bool(result.alarm))
        if name in REGION_TOPICS or (name.startswith("segmentation")
                                     and self.segmentation_class >= 0):
            if located is None:
                raise ValueError(f"output {name!r} needs the frame's anomaly regions "
                                 "(AnomalyLocator.locate), got none")
        if name == "ood/mask":
            return mask_message(self.typestore, header, located.mask)
        if name == "ood/regions":
            return regions_message(self.typestore, header, camera, located.regions,
                                   self.node_name)
        if name == "ood/points":
            if located.points is None:
                return None
            return points_message(self.typestore, header, located.points)
        labels = result.labels
        if self.segmentation_class >= 0 and name.startswith("segmentation"):
            labels = paint_class(labels, located.mask, self.segmentation_class)
        images = {
            "segmentation": lambda: (labels, "mono8"),
            "segmentation/color": lambda: (colorize(labels), "rgb8"),
            "uncertainty": lambda: (result.uncertainty, "32FC1"),
            "uncertainty/color": lambda: (heat_map(result.uncertainty), "rgb8"),
            "confidence": lambda: (result.confidence, "mono8"),
        }
        if name not in images:
            raise ValueError(f"unknown output {name!r}; expected one of {list(OUTPUT_TOPICS)}")
        return self._image(header, *images[name]())

    def messages(self, header: Any, camera: str, result: FrameResult,
                 located: Located | None = None) -> Iterator[tuple[str, str, Any]]:
        """``(topic suffix, msgtype, message)`` for one frame in ``OUTPUT_TOPICS`` order, each
        built only when its turn comes; ``header`` is copied from the input; outputs with
        nothing to say (``ood/points`` without geometry) are left out."""
        header = self.header(header)
        for name in self.names():
            message = self.message(name, header, camera, result, located)
            if message is not None:
                yield name, OUTPUT_TOPICS[name], message

    def build(self, namespace: str, header: Any, camera: str, result: FrameResult,
              located: Located | None = None) -> list[tuple[str, str, Any]]:
        """``[(topic, msgtype, message)]`` for one frame, ``header`` copied from the input."""
        return [(output_topic(namespace, suffix), msgtype, message)
                for suffix, msgtype, message in self.messages(header, camera, result, located)]
