"""A short ``dudes demo`` run whose bag the replay and process-bag tests use as "the demo's bag"
(same topics, stamps and recording as the full demo; a tiny model, fewer and smaller frames)."""

from __future__ import annotations

from pathlib import Path

from dudes_ros import cli
from tests.helpers.tiny_models import tiny_onnx

FRAMES, SIZE, RATE_HZ = 40, "128x256", 10  # the full demo: 72 frames, 256x512, 10 Hz
IMAGE_TOPIC = "/dudes_demo/image"


def write_demo_bag(folder: Path) -> Path:
    """Run the demo (tiny random student, real node) into ``folder/demo_output``; returns the
    bag folder ``folder/demo_output/bag``."""
    model = tiny_onnx(folder)
    out = folder / "demo_output"
    code = cli.main(["demo", "--model", str(model), "--frames", str(FRAMES), "--size", SIZE,
                     "--enter", "10", "--leave", "30", "--rate", str(RATE_HZ),
                     "--pixel-threshold", "0.5", "--frame-threshold", "0.5",
                     "--output", str(out), "--no-progress"])
    assert code == 0, f"dudes demo exited with {code}"
    return out / "bag"
