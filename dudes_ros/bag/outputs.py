"""The node's output messages for one frame, as ``rosbags`` dataclasses of ROS 2 Kilted types.

Topic names and contents follow the node (DESIGN §3.3), relative to the camera namespace:
``segmentation`` (mono8 trainIds), ``segmentation/color`` (rgb8 palette, optional),
``uncertainty`` (32FC1), ``confidence`` (mono8, 255 = certain), ``ood``
(diagnostic_msgs/DiagnosticArray) and ``ood_alarm`` (std_msgs/Bool), every one stamped with
the input image's header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from rosbags.typesys.store import Typestore

from dudes_ros.labels import colorize
from dudes_ros.perception import FrameResult, OodConfig
from dudes_ros.ros.conversions import array_to_image_fields

IMAGE = "sensor_msgs/msg/Image"
DIAGNOSTIC_ARRAY = "diagnostic_msgs/msg/DiagnosticArray"
BOOL = "std_msgs/msg/Bool"

# topic suffix -> message type, in the order messages are written for a frame
OUTPUT_TOPICS: dict[str, str] = {
    "segmentation": IMAGE,
    "segmentation/color": IMAGE,
    "uncertainty": IMAGE,
    "confidence": IMAGE,
    "ood": DIAGNOSTIC_ARRAY,
    "ood_alarm": BOOL,
}

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels
NODE_NAME = "dudes_node"  # the node's default name: offline and live diagnostics read the same


def output_topic(namespace: str, suffix: str) -> str:
    """``/cam_front`` + ``segmentation`` -> ``/cam_front/segmentation``."""
    return f"{namespace.rstrip('/')}/{suffix}"


def ood_level(result: FrameResult, ood: OodConfig) -> int:
    """ERROR while the debounced alarm is raised, WARN for a frame over threshold, else OK."""
    if result.alarm:
        return ERROR
    return WARN if result.ood_score > ood.frame_threshold else OK


def ood_values(result: FrameResult, ood: OodConfig) -> dict[str, str]:
    """Key/value pairs of the ``ood`` diagnostic status (the node's keys, in its order)."""
    return {
        "score": f"{result.ood_score:.6f}",
        "threshold": f"{ood.frame_threshold:.6f}",
        "uncertain_fraction": f"{result.uncertain_fraction:.6f}",
        "alarm": str(result.alarm).lower(),
        "pixel_threshold": f"{ood.pixel_threshold:.6f}",
    }


@dataclass
class OutputBuilder:
    """Builds the output messages of one frame with the types of ``typestore``."""

    typestore: Typestore
    ood: OodConfig
    color: bool = False

    def topics(self, namespace: str) -> dict[str, str]:
        """``{topic: msgtype}`` this builder writes for a camera namespace."""
        return {output_topic(namespace, suffix): msgtype
                for suffix, msgtype in OUTPUT_TOPICS.items()
                if self.color or suffix != "segmentation/color"}

    def header(self, header: Any) -> Any:
        """A ROS 2 header with the input's stamp and frame id (ROS 1 headers drop ``seq``)."""
        types = self.typestore.types
        stamp = types["builtin_interfaces/msg/Time"](sec=int(header.stamp.sec),
                                                     nanosec=int(header.stamp.nanosec))
        return types["std_msgs/msg/Header"](stamp=stamp, frame_id=str(header.frame_id))

    def _image(self, header: Any, array: np.ndarray, encoding: str) -> Any:
        fields = array_to_image_fields(array, encoding)
        fields["data"] = np.frombuffer(fields["data"], dtype=np.uint8)
        return self.typestore.types[IMAGE](header=header, **fields)

    def build(self, namespace: str, header: Any, camera: str,
              result: FrameResult) -> list[tuple[str, str, Any]]:
        """``[(topic, msgtype, message)]`` for one frame, ``header`` copied from the input."""
        types = self.typestore.types
        header = self.header(header)
        messages = [(output_topic(namespace, "segmentation"), IMAGE,
                     self._image(header, result.labels, "mono8"))]
        if self.color:
            messages.append((output_topic(namespace, "segmentation/color"), IMAGE,
                             self._image(header, colorize(result.labels), "rgb8")))
        messages.append((output_topic(namespace, "uncertainty"), IMAGE,
                         self._image(header, result.uncertainty, "32FC1")))
        messages.append((output_topic(namespace, "confidence"), IMAGE,
                         self._image(header, result.confidence, "mono8")))
        level = ood_level(result, self.ood)
        text = {OK: "in distribution", WARN: "frame over OOD threshold", ERROR: "OOD alarm"}
        values = [types["diagnostic_msgs/msg/KeyValue"](key=k, value=v)
                  for k, v in ood_values(result, self.ood).items()]
        status = types["diagnostic_msgs/msg/DiagnosticStatus"](
            level=level, name=f"{NODE_NAME}: ood", message=text[level],
            hardware_id=camera, values=values)
        messages.append((output_topic(namespace, "ood"), DIAGNOSTIC_ARRAY,
                         types[DIAGNOSTIC_ARRAY](header=header, status=[status])))
        messages.append((output_topic(namespace, "ood_alarm"), BOOL,
                         types[BOOL](data=bool(result.alarm))))
        return messages
