"""dudes_ros test suite."""
