"""SIGINT and SIGTERM while the node streams: a normal stop, with no ERROR in its log.

Before the worker checked the context itself, a signal that shut the context down while a frame
was being published logged ``[ERROR] processing failed: RCLError("failed to get subscription
count: publisher's context is invalid")`` in 6 of 16 runs (exit code 0 in all). Each run here
starts a node, streams frames to it with every output subscribed (so the worker asks for
subscription counts and publishes all outputs of every frame), waits until outputs come back,
sends the signal mid-stream and keeps streaming until the node has exited.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pytest

from tests.helpers.export_models import write_student

pytestmark = [pytest.mark.ros, pytest.mark.slow]
rclpy = pytest.importorskip("rclpy")

from tests.test_node import Client, image_msg, start_node  # noqa: E402

RUNS = 10  # per signal
H, W = 64, 128


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The ONNX of a tiny student (tests.helpers.export_models)."""
    return write_student(tmp_path_factory.mktemp("student"))[1]


def stream_and_signal(client: Client, process: subprocess.Popen, sig: int) -> int:
    """Publish frames until outputs return, send ``sig``, keep publishing until the node exits;
    returns its exit code."""
    rgb = np.random.default_rng(0).integers(0, 255, (H, W, 3), np.uint8)
    seen = 0
    deadline = time.monotonic() + 60
    for k in range(10**6):
        assert time.monotonic() < deadline, "the node neither answered nor exited in 60 s"
        client.send("", image_msg(rgb, f"f{k}"), wait_for=None)
        client.executor.spin_once(timeout_sec=0.005)
        if seen == 0 and len(client.received) >= 10:  # outputs of several frames came back
            seen = k
            process.send_signal(sig)
        if seen and process.poll() is not None:
            return process.returncode
    raise AssertionError("unreachable")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_stream_stops_the_node_without_an_error(ros_context, model, tmp_path, sig):
    failures = []
    for run in range(RUNS):
        namespace = f"stop{run}"
        log = tmp_path / f"node{run}.log"
        process = start_node(dict(os.environ), log, namespace=namespace, model=model,
                             device="cpu", qos__reliability="reliable", input_timeout=0.0,
                             max_input_age=0.0, ood__pixel_threshold=0.5,
                             ood__frame_threshold=0.5)
        client = Client([""], namespace=namespace)
        try:
            client.wait_ready(process, log)
            code = stream_and_signal(client, process, sig)
        finally:
            client.close()
            if process.poll() is None:
                process.kill()
                process.wait(timeout=20)
        text = log.read_text()
        errors = [line for line in text.splitlines() if "ERROR" in line or "Traceback" in line]
        if code != 0 or errors:
            failures.append(f"run {run}: exit code {code}, error lines {errors}")
    assert not failures, f"{len(failures)} of {RUNS} runs:\n" + "\n".join(failures)
