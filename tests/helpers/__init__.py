"""Programs and fixtures shared by tests (run as separate processes where ROS needs it)."""
