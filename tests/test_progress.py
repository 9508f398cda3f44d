"""The engine commands' progress display (``dudes_ros.commands.progress``)."""

from __future__ import annotations

from dudes_ros.commands.progress import TqdmProgress


def test_tqdm_progress_tracks_nested_phases():
    progress = TqdmProgress()
    progress("Building", 0, 3)
    progress("Tactics", 0, 10)
    for step in range(1, 8):
        progress("Tactics", step, 0)
    assert progress.bars["Tactics"].n == 7 and progress.bars["Tactics"].total == 10
    progress("Tactics", -1, 0)
    progress("Building", 1, 0)
    assert list(progress.bars) == ["Building"] and progress.bars["Building"].n == 1
    progress("Building", -1, 0)
    assert progress.bars == {}
