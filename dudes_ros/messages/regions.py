"""Messages for anomaly regions, as ``rosbags`` dataclasses (ROS-free, like ``outputs``).

- ``ood/mask`` - sensor_msgs/Image mono8, 255 on anomalous pixels;
- ``ood/regions`` - diagnostic_msgs/DiagnosticArray, one WARN status per region with its id,
  pixel box, area and u statistics as key/values (an empty status list: no region). Chosen
  because diagnostic_msgs is in every supported distribution's wheels and already a
  dependency; visualization_msgs (ImageMarker) and vision_msgs are not installed with them;
- ``ood/points`` - sensor_msgs/PointCloud2 of x, y, z float32 in the camera's optical frame,
  for nav2's ObstacleLayer / VoxelLayer.

Every message carries the input image's header (``header`` is a ROS 2 header as
``OutputBuilder.header`` makes it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rosbags.typesys.store import Typestore

from dudes_ros.anomaly_regions import Region
from dudes_ros.messages.conversions import array_to_image_fields
from dudes_ros.messages.types import DIAGNOSTIC_ARRAY, IMAGE

POINT_CLOUD2 = "sensor_msgs/msg/PointCloud2"
REGION_TOPICS: dict[str, str] = {
    "ood/mask": IMAGE,
    "ood/regions": DIAGNOSTIC_ARRAY,
    "ood/points": POINT_CLOUD2,
}
WARN = 1  # diagnostic_msgs/DiagnosticStatus level of a region
FLOAT32 = 7  # sensor_msgs/PointField datatype


def mask_message(typestore: Typestore, header: Any, mask: np.ndarray) -> Any:
    """``ood/mask``: uint8 ``mask`` [H, W] (255 = anomalous) as a mono8 Image."""
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"mask must be uint8 [H, W], got {mask.dtype} {mask.shape}")
    return typestore.types[IMAGE](header=header, **array_to_image_fields(mask, "mono8"))


def region_values(region: Region) -> dict[str, str]:
    """Key/value pairs of one region's status, in this order."""
    return {"id": str(region.id), "x": str(region.x), "y": str(region.y),
            "width": str(region.width), "height": str(region.height),
            "area": str(region.area), "mean_u": f"{region.mean_u:.6f}",
            "max_u": f"{region.max_u:.6f}"}


def regions_message(typestore: Typestore, header: Any, camera: str, regions: list[Region],
                    node_name: str) -> Any:
    """``ood/regions``: one DiagnosticStatus per region, named ``<node_name>: region <id>``,
    ``hardware_id`` = ``camera``; pixel coordinates are those of ``ood/mask``."""
    types = typestore.types
    status = [types["diagnostic_msgs/msg/DiagnosticStatus"](
        level=WARN, name=f"{node_name}: region {region.id}", message="anomaly region",
        hardware_id=camera,
        values=[types["diagnostic_msgs/msg/KeyValue"](key=k, value=v)
                for k, v in region_values(region).items()])
        for region in regions]
    return types[DIAGNOSTIC_ARRAY](header=header, status=status)


def points_message(typestore: Typestore, header: Any, points: np.ndarray) -> Any:
    """``ood/points``: float32 ``points`` [N, 3] (optical frame, metres) as an unordered
    PointCloud2 (height 1, little-endian x, y, z float32, 12 bytes a point)."""
    points = np.ascontiguousarray(points, dtype="<f4")
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be [N, 3], got shape {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("points must be finite (a PointCloud2 marked dense carries no NaN)")
    types = typestore.types
    fields = [types["sensor_msgs/msg/PointField"](name=name, offset=4 * i, datatype=FLOAT32,
                                                  count=1)
              for i, name in enumerate("xyz")]
    n = int(points.shape[0])
    return types[POINT_CLOUD2](header=header, height=1, width=n, fields=fields,
                               is_bigendian=False, point_step=12, row_step=12 * n,
                               data=points.view(np.uint8).reshape(-1), is_dense=True)
