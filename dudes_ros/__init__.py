"""dudes_ros: DUDES semantic segmentation with distilled uncertainty and an OOD alarm for ROS 2.

The package's layers (which module may import which) are written once, in the table of
docs/ARCHITECTURE.md; tests/test_architecture.py reads that table and holds the imports to it.
"""

__version__ = "0.1.0"
