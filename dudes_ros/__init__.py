"""dudes_ros: DUDES semantic segmentation with distilled uncertainty and an OOD alarm for ROS 2."""

__version__ = "0.1.0"
