"""The dudes node in its own process, as a user would start it, with its log in a file."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any


def ros_value(value: Any) -> str:
    """A parameter value as ``--ros-args -p name:=VALUE`` parses it back to the same type
    (floats keep their decimal point so a double parameter never receives an integer)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def node_command(namespace: str, parameters: dict[str, Any]) -> list[str]:
    """``python -m dudes_ros.ros.node --ros-args -r __ns:=NAMESPACE -p k:=v ...``."""
    command = [sys.executable, "-m", "dudes_ros.ros.node", "--ros-args", "-r",
               f"__ns:={namespace}"]
    for name, value in parameters.items():
        command += ["-p", f"{name}:={ros_value(value)}"]
    return command


class NodeProcess:
    """``with NodeProcess(command, log) as node:`` runs the node until the block ends, then
    stops it with SIGINT (the node's clean lifecycle shutdown), escalating to SIGKILL."""

    def __init__(self, command: list[str], log_path: Path) -> None:
        self.command = command
        self.log_path = log_path
        self._process: subprocess.Popen | None = None
        self._log = None

    def __enter__(self) -> NodeProcess:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in __exit__
        self._process = subprocess.Popen(self.command, stdout=self._log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the node (SIGINT, then SIGKILL after ``timeout`` s); returns its exit code."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return None if process is None else process.returncode

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines the node wrote (stdout and stderr)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
