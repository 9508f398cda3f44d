"""What places an active node's anomaly regions in 3-D: each camera's ``camera_info`` and, with
``depth_topic`` set, its registered depth image.

image_transport's convention puts ``camera_info`` beside the image (``<camera>/camera_info``;
remap it with the image), so one subscription per camera reads it; the depth image is
``<camera>/<depth_topic>``. Both are ordinary subscriptions on the executor thread that keep
only the newest message (camera_info changes rarely; a depth image is paired with the colour
frame by arrival, not by stamp, which a planner's costmap tolerates at camera rates). The
worker asks ``geometry`` for a frame's ``anomaly_locator.Geometry``; what stops the points is
kept per camera and reported as a WARN in ``/diagnostics``.
"""

from __future__ import annotations

from typing import Any

from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image

from dudes_ros.anomaly_locator import Geometry, camera_geometry
from dudes_ros.ground import FlatGround
from dudes_ros.messages.conversions import ImageRejected, depth_to_array


def camera_topic(camera: str, name: str) -> str:
    """Relative topic of ``name`` for ``camera`` ("" = un-prefixed single camera)."""
    return f"{camera}/{name}" if camera else name


class CameraGeometry:
    """The newest ``camera_info`` (and depth image) of every camera of ``node``, subscribed with
    ``qos`` until ``close``."""

    def __init__(self, node: Any, cameras: list[str], depth_topic: str, qos: QoSProfile) -> None:
        self.node = node
        self.depth_topic = depth_topic
        self._info: dict[str, Any] = {}
        self._depth: dict[str, Any] = {}
        self._problems: dict[str, str] = {}
        self._subscriptions = [
            node.create_subscription(CameraInfo, camera_topic(camera, "camera_info"),
                                     lambda msg, c=camera: self._info.__setitem__(c, msg), qos)
            for camera in cameras]
        if depth_topic:
            self._subscriptions += [
                node.create_subscription(Image, camera_topic(camera, depth_topic),
                                         lambda msg, c=camera: self._depth.__setitem__(c, msg),
                                         qos)
                for camera in cameras]

    def geometry(self, camera: str, image_size: tuple[int, int], ground: FlatGround | None,
                 wanted: bool = True) -> Geometry | None:
        """The geometry of ``camera``'s frame of ``image_size`` = (H, W), or None (no points):
        not ``wanted`` (nobody subscribes to ``ood/points``), no ground and no depth
        configured, or a problem, kept for ``problems`` until the next frame."""
        if not wanted:
            self._problems.pop(camera, None)
            return None
        depth, problem = None, None
        if self.depth_topic:
            depth, problem = self._depth_image(camera)
        geometry = None
        if problem is None:
            geometry, problem = camera_geometry(camera or "camera", self._info.get(camera),
                                                image_size, ground, depth)
        if problem is None:
            self._problems.pop(camera, None)
        else:
            self._problems[camera] = problem
        return geometry

    def _depth_image(self, camera: str) -> tuple[Any, str | None]:
        msg = self._depth.get(camera)
        name = camera_topic(camera, self.depth_topic)
        if msg is None:
            return None, f"camera {camera or 'camera'}: no depth image received on {name}"
        try:
            return depth_to_array(msg), None
        except ImageRejected as exc:
            return None, f"camera {camera or 'camera'}: depth image on {name}: {exc}"

    def problems(self) -> list[str]:
        """Why cameras publish no ``ood/points`` as of their last frame (``ood/points``
        subscribed, and a ground or depth configured)."""
        return list(self._problems.values())

    def close(self) -> None:
        for sub in self._subscriptions:
            self.node.destroy_subscription(sub)
        self._subscriptions = []
