"""The streaming of an active node: one worker thread and the ``dudes_publish`` pool.

The worker waits on the image subscriptions itself (``Intake``), takes the newest message of
every camera, passes each through the ``FrameGate`` (decode, staleness, conversion, size: the
gate ``process-bag`` uses too), infers (one batch per resolution) and scores, locates the
anomaly regions when a subscribed output needs them (``AnomalyLocator``, as ``process-bag``);
the pool's ``PUBLISH_THREADS`` threads build and publish the outputs, and the worker waits for
them before its next step. A context shut down under it (SIGINT, SIGTERM) ends it quietly.
"""

from __future__ import annotations

import math
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from dudes_ros.anomaly_locator import AnomalyLocator, Located
from dudes_ros.inference.predictor import Predictor
from dudes_ros.messages.frame_gate import DROPPED_STALE, Frame, FrameGate
from dudes_ros.messages.outputs import ON_DEMAND, OutputBuilder
from dudes_ros.messages.types import COMPRESSED_IMAGE, IMAGE
from dudes_ros.perception import FrameResult
from dudes_ros.ros.intake import Intake, Taken
from dudes_ros.ros.params import NodeConfig

# Threads that build and publish output messages: the colour images, the confidence image and
# the middleware's copies release the GIL, so one frame's outputs go out side by side
# (BENCHMARKS.md, node cost at full resolution).
PUBLISH_THREADS = min(4, os.cpu_count() or 1)


def frame_gate(config: NodeConfig, predictor: Predictor, typestore: Any) -> FrameGate:
    """The gate of a node configured with ``config`` (transport, max_pixels, max_input_age)
    in front of ``predictor``; ``typestore`` decodes the taken CDR bytes."""
    intake = config.intake
    return FrameGate(COMPRESSED_IMAGE if intake.transport == "compressed" else IMAGE,
                     predictor.size_problem, intake.max_pixels, intake.max_input_age, typestore)


class Worker:
    """Streams ``intake``'s frames through ``node``'s core to its publishers until ``stop``.

    Reads the node's ``config``, ``core`` and ``output_publishers`` at every step (a parameter
    change applies to the next frame) and writes its ``stats``, ``inputs`` and
    ``live_outputs``."""

    def __init__(self, node: Any, intake: Intake) -> None:
        self.node = node
        self.intake = intake
        self._stop = threading.Event()
        self._last_log: dict[str, float] = {}
        self._locator = AnomalyLocator(node.config.regions)  # tracks restart with the worker
        self._pool = ThreadPoolExecutor(PUBLISH_THREADS, "dudes_publish")
        self._thread = threading.Thread(target=self._work, name="dudes_worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ends the thread (after its current step) and the pool."""
        self._stop.set()
        self.intake.wake()
        self._thread.join()
        self._pool.shutdown()

    def _stopping(self) -> bool:
        """Asked to stop, or the context is gone: rcl refuses a wait, a take, a subscription
        count or a publish on a context shut down under it (SIGINT, SIGTERM)."""
        return self._stop.is_set() or not self.node.context.ok()

    def _work(self) -> None:
        stats = self.node.stats
        while not self._stopping():
            try:
                taken = self.intake.take_latest(timeout=0.25)
            except Exception as exc:  # noqa: BLE001 - keep streaming; counted and logged
                self._failed("take", f"taking camera messages failed: {exc!r}")
                continue
            stats.count("in", taken.arrived)
            self.node.inputs.arrived(taken.messages)
            stats.count("dropped_superseded", taken.superseded)
            if taken.messages and not self._stopping():
                try:
                    self._step(taken)
                except Exception as exc:  # noqa: BLE001 - keep streaming; counted and logged
                    self._failed("error", f"processing failed: {exc!r}")

    def _failed(self, key: str, text: str) -> None:
        """Count and log a failed take or step, unless the node is stopping (a normal stop)."""
        if self._stopping():
            return
        self.node.stats.count("errors")
        self._log_throttled(key, text, error=True)
        if key == "take":
            self._stop.wait(0.1)

    def _step(self, taken: Taken) -> None:
        node = self.node
        config, core, stats = node.config, node.core, node.stats
        gate = frame_gate(config, core.predictor, node.typestore)
        now_ns = node.get_clock().now().nanoseconds  # node clock: sim time under use_sim_time
        frames: dict[str, Frame] = {}
        for camera, raw in taken.messages.items():
            verdict = gate.admit_cdr(raw, now_ns)
            if isinstance(verdict, Frame):
                frames[camera] = verdict
                continue
            if verdict.outcome == DROPPED_STALE:
                stats.count("dropped_stale")
            else:
                stats.reject(verdict.reason)
            self._log_throttled(verdict.reason, f"camera {camera!r}: {verdict.text}")
        if not frames:
            return
        results = core.process({camera: frame.rgb for camera, frame in frames.items()})
        published: dict[str, list[Future]] = {}
        try:
            for camera, result in results.items():
                if self._stopping():  # no subscription count nor publish on a dead context
                    return
                published[camera] = self._publish(camera, frames[camera], result)
        finally:  # every task submitted ends before the next step uses the publishers
            wait([f for futures in published.values() for f in futures])
        for camera, result in results.items():
            done_ns = max(f.result() for f in published[camera])  # raises a task's error
            latency = (done_ns - taken.arrived_ns[camera]) * 1e-6
            stats.count("processed")
            stats.add(inference_ms=result.inference_ms, node_latency_ms=latency,
                      node_overhead_ms=latency - result.inference_ms,
                      header_age_ms=frames[camera].age_s * 1e3, alarm=float(result.alarm))

    def _publish(self, camera: str, frame: Frame, result: FrameResult) -> list[Future]:
        """Every output of one frame, built with ``OutputBuilder`` (as ``process-bag`` builds
        them) and published as CDR through rcl (``CdrPublisher``: one copy of each image before
        the middleware's, where an rclpy message costs three). Each output is built and sent
        by a task of the publisher pool, whose futures give the steady time it was sent; the
        worker waits for them all before its next step, so one topic's ``CdrPublisher`` is
        never used by two threads at once."""
        node = self.node
        pubs = node.output_publishers[camera]
        # Outputs nobody subscribes to are neither built nor copied, nor are regions found
        # for them; asked every frame, so a subscriber that arrives gets the next frame. ood
        # and ood_alarm always go out.
        live = frozenset(name for name in ON_DEMAND
                         if pubs[name].publisher.get_subscription_count() > 0)
        node.live_outputs[camera] = live
        config = node.config
        builder = OutputBuilder(node.typestore, live, node.get_fully_qualified_name(),
                                config.regions_segmentation_class)
        header = builder.header(frame.header)
        located = self._locate(camera, frame, result, live) if builder.needs_regions else None

        def send(name: str) -> int:
            message = builder.message(name, header, camera or "camera", result, located)
            if message is not None:  # ood/points without geometry: nothing to say
                pubs[name].publish(message)
            return time.monotonic_ns()
        return [self._pool.submit(send, name) for name in builder.names()]

    def _locate(self, camera: str, frame: Frame, result: FrameResult,
                live: frozenset[str]) -> Located:
        config = self.node.config
        if self._locator.config != config.regions:  # changed at run time
            self._locator.set_config(config.regions)
        geometry = self.node.camera_geometry.geometry(camera, frame.rgb.shape[:2], config.ground,
                                                      wanted="ood/points" in live)
        return self._locator.locate(camera, result.uncertainty, result.ood.pixel_threshold,
                                    geometry)

    def _log_throttled(self, key: str, text: str, error: bool = False) -> None:
        now = time.monotonic()
        config = self.node.config
        period = config.diagnostics.reject_log_period if config else 5.0
        if now - self._last_log.get(key, -math.inf) >= period:
            self._last_log[key] = now
            logger = self.node.get_logger()
            (logger.error if error else logger.warning)(text)
