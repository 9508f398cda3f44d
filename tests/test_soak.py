"""A 60-second soak of dudes_node (2 cameras x 30 Hz, 1024x512 rgb8, ONNX Runtime on the CPU):
no crash, RSS growth < 5 % after warm-up, every output stamped with a frame that was sent,
every processed frame on all its outputs, frame age bounded. The 10-minute run is
``python benchmarks/soak_node.py``."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]
pytest.importorskip("rclpy")

from benchmarks.soak_node import SoakSettings, soak  # noqa: E402


def test_soak_60_seconds(tmp_path):
    settings = SoakSettings(duration=60.0, warmup=20.0)
    results = soak(settings, tmp_path, progress=False)
    summary = {k: v for k, v in results.items() if k != "settings"}
    assert results["goals"] == dict.fromkeys(results["goals"], True), summary
    # the node saw (nearly) every frame: the Fast DDS large-image profile delivers them
    assert results["node_frames_in"] >= 0.95 * results["frames_sent"], summary
    # nothing vanished inside the node: every frame it got was processed or counted as dropped
    # (the last /diagnostics comes seconds after the last frame, so nothing is in flight)
    accounted = (results["node_processed"] + results["node_dropped_superseded"]
                 + results["node_dropped_stale"] + results["node_rejected"])
    assert results["node_frames_in"] == accounted, summary
    assert results["outputs_received"] == results["node_processed"] > 60, summary
    assert results["node_rejected"] == results["node_errors"] == 0, summary
    assert results["end_to_end_ms"]["max"] <= results["age_bound_ms"], summary
    assert abs(results["rss_mb"]["growth_pct"]) < 5.0, summary
    assert results["threads"][0] == results["threads"][1], summary
    assert results["fds"][1] - results["fds"][0] <= 2, summary
