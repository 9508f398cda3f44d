"""The node's counters (``Stats``) and its ``/diagnostics`` status, assembled from what the node
holds; the level and its wording are ``health.level_and_message``'s."""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType

from dudes_ros.ros import health, params

_LEVEL = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN,
          "error": DiagnosticStatus.ERROR}
# The /diagnostics level judges the outcomes of the last LEVEL_WINDOW frames the worker took
# (about 1 s of a 30 Hz camera), so one bad frame does not leave the node at WARN for good;
# the totals since start are reported as values.
LEVEL_WINDOW = 30
OUTCOMES = ("processed", "dropped_stale", "rejected", "errors")  # of one taken frame


class Stats:
    """Counters since start, latency windows (last ``window`` frames) and the outcomes of the
    last ``level_window`` taken frames (``OUTCOMES``), shared by worker and timer.

    Latencies (ms): ``inference`` is the predict call; ``node_latency`` runs from the frame's
    arrival in the node to its last output published and ``node_overhead`` is that minus
    inference (both steady clock, so they mean the same for live and recorded data);
    ``header_age`` is the node clock when the worker took the frame minus its header stamp.
    """

    def __init__(self, window: int = 300, level_window: int = LEVEL_WINDOW) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.windows: dict[str, deque[float]] = {
            k: deque(maxlen=window) for k in ("inference_ms", "node_latency_ms",
                                              "node_overhead_ms", "header_age_ms", "alarm")}
        self.recent: deque[str] = deque(maxlen=level_window)

    def add(self, **values: float) -> None:
        with self.lock:
            for key, value in values.items():
                self.windows[key].append(value)

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n
            if key in OUTCOMES:
                self.recent.extend([key] * n)

    def reject(self, reason: str) -> None:
        with self.lock:
            self.counts["rejected"] += 1
            self.rejected[reason] += 1
            self.recent.append("rejected")

    def recent_outcomes(self) -> tuple[int, Counter[str]]:
        """(frames in the level window, their outcomes)."""
        with self.lock:
            return len(self.recent), Counter(self.recent)

    def summary(self) -> list[tuple[str, str]]:
        with self.lock:
            out = [(f"frames_{k}", str(self.counts[k])) for k in
                   ("in", "processed", "dropped_stale", "dropped_superseded", "rejected",
                    "errors")]
            out += [(f"rejected_{k}", str(v)) for k, v in sorted(self.rejected.items())]
            recent = Counter(self.recent)
            out.append(("recent_frames", str(len(self.recent))))
            out += [(f"recent_{k}", str(recent[k])) for k in OUTCOMES]
            for key in ("inference_ms", "node_latency_ms", "node_overhead_ms", "header_age_ms"):
                values = np.asarray(self.windows[key])
                for q in (50, 95):
                    text = f"{np.percentile(values, q):.2f}" if values.size else "nan"
                    out.append((f"{key.removesuffix('_ms')}_p{q}_ms", text))
            alarms = np.asarray(self.windows["alarm"])
            out.append(("ood_rate", f"{alarms.mean():.3f}" if alarms.size else "nan"))
        return out


def _label(camera: str) -> str:
    return camera or "camera"


def node_status(node: Any) -> DiagnosticStatus:
    """The node's one ``/diagnostics`` status: lifecycle state, the last failure, the model's
    provenance and OOD thresholds, what it was trained on, its inputs and how frames travel,
    the image outputs someone subscribes to, ``Stats.summary`` and the level
    (``health.level_and_message``). ``node``: a ``DudesNode``, read from the executor thread."""
    core, config, inputs = node.core, node.config, node.inputs
    values = [("state", node.lifecycle_state)]
    if node.failure:
        values.append(("error", node.failure))
    if core is not None:
        values += [(f"model_{k}" if k != "backend" else k, str(v))
                   for k, v in core.predictor.provenance().items()]
        values.append(("backend_cpu_fallback", str(core.predictor.cpu_fallback).lower()))
        values += [("ood_pixel_threshold", f"{core.ood.pixel_threshold:.6f}"),
                   ("ood_frame_threshold", f"{core.ood.frame_threshold:.6f}")]
    if node.trained_on is not None:
        values.append(("trained_on", health.trained_on_text(node.trained_on)))
    if inputs is not None:
        values.append(("inputs", "; ".join(f"{_label(camera)}: {inp.describe()}"
                                           for camera, inp in inputs.inputs.items())))
    publishers = node.output_publishers
    if publishers:  # "rcl", or "rclpy" where librcl could not be called (CdrPublisher)
        values.append(("outputs_published_via", next(iter(publishers.values()))["ood"].via))
        intake = node.intake
        if intake is not None:  # "rcl", or "rclpy" where librcl could not be called
            values.append(("inputs_taken_via", intake.via))
        live = dict(node.live_outputs)  # as of each camera's last published frame
        values.append(("live_outputs", "; ".join(
            f"{_label(camera)}: " + ",".join([*sorted(live.get(camera, ())), "ood", "ood_alarm"])
            for camera in publishers)))
    values += node.stats.summary()
    problems = inputs.problems(config.intake.input_timeout) if inputs is not None else []
    if node.camera_geometry is not None:  # why ood/points is not published
        problems += node.camera_geometry.problems()
    if core is not None and core.predictor.cpu_fallback:  # a GPU machine running on the CPU
        problems.append(f"running on the CPU: {core.predictor.selected_because}")
    level, message = health.level_and_message(
        node.failure, node.lifecycle_state, problems, node.stats.recent_outcomes(),
        config.intake.max_input_age if config else math.nan)
    return DiagnosticStatus(
        level=_LEVEL[level], name=f"{node.get_fully_qualified_name()}: inference",
        hardware_id=",".join(config.intake.camera_names) if config else "",
        message=message, values=[KeyValue(key=k, value=v) for k, v in values])


class DiagnosticsPublisher:
    """``/diagnostics`` of ``node`` (``node_status``) every ``diagnostics_period`` seconds. It
    exists in every lifecycle state (a monitor tells a node that failed to configure from one
    that is not there) and runs on the steady clock, so it keeps going under use_sim_time when
    /clock stops. Until configure reads the parameters, the declared period is used, or its
    default while that is invalid (configure then fails naming it, and /diagnostics says so)."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.publisher = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.timer = None
        value = node.get_parameter("diagnostics_period").value
        valid = params.validate("diagnostics_period", value) is None
        self.restart(float(value if valid else params.BY_NAME["diagnostics_period"].default))

    def restart(self, period: float) -> None:
        """Publish every ``period`` seconds from now on (nothing changes at the same period)."""
        if self.timer is not None:
            if abs(self.timer.timer_period_ns - period * 1e9) < 1:
                return
            self.node.destroy_timer(self.timer)
        self.timer = self.node.create_timer(period, self.publish,
                                            clock=Clock(clock_type=ClockType.STEADY_TIME))

    def publish(self) -> None:
        msg = DiagnosticArray(status=[node_status(self.node)])
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.publisher.publish(msg)
