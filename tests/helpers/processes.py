"""Stopping the subprocesses a test started (nodes, ``dudes replay``), whatever state the test
left them in."""

from __future__ import annotations

import subprocess


def stop(*processes: subprocess.Popen | None, timeout: float = 20) -> None:
    """Terminate and reap each process still running; None (never started) is skipped."""
    for process in processes:
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=timeout)
