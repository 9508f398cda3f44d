"""Tests of dudes_ros.evaluate.metrics: one file per metric."""
