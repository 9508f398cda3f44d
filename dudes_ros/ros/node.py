"""``dudes_node``: the lifecycle node, a thin adapter between ROS topics and ``PerceptionCore``.

Threads: the executor thread runs the diagnostics timer (steady clock, in every lifecycle
state), the lifecycle services and the parameter callbacks; one worker thread waits on the
image subscriptions itself (``Intake``: rclpy's executor would add about 2 ms per frame), takes
the newest frame of every camera, converts, infers (one batch per resolution) and scores;
the ``dudes_publish`` pool (``PUBLISH_THREADS``) builds and publishes the outputs, and the
worker waits for them before its next step. Nothing queues: a frame that arrives before the
previous one was taken is replaced in the subscription's ``qos.depth`` queue and counted as
superseded.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import Node, State, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.typesys import get_typestore
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Bool

from dudes_ros.config import ConfigError
from dudes_ros.messages.conversions import ImageRejected, compressed_to_rgb, image_to_rgb
from dudes_ros.messages.outputs import IMAGE_TOPICS, OUTPUT_TOPICS, OutputBuilder
from dudes_ros.messages.types import (
    BOOL,
    COMPRESSED_IMAGE,
    DIAGNOSTIC_ARRAY,
    IMAGE,
    OUTPUT_TYPESTORE,
    stamp_ns,
)
from dudes_ros.perception import FrameResult, OodConfig, PerceptionCore
from dudes_ros.ros import health, params, usage
from dudes_ros.ros.cdr_publisher import CdrPublisher
from dudes_ros.ros.intake import Intake, Taken, WorkerOwned
from dudes_ros.runtime.manifest import ood_calibration

# Threads that build and publish output messages: the colour images, the confidence image and
# the middleware's copies release the GIL, so one frame's outputs go out side by side
# (BENCHMARKS.md, node cost at full resolution).
PUBLISH_THREADS = min(4, os.cpu_count() or 1)
MSG_CLASSES = {IMAGE: Image, COMPRESSED_IMAGE: CompressedImage,  # inputs and OUTPUT_TOPICS
               DIAGNOSTIC_ARRAY: DiagnosticArray, BOOL: Bool}
_LEVEL = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN,
          "error": DiagnosticStatus.ERROR}
# The /diagnostics level judges the outcomes of the last LEVEL_WINDOW frames the worker took
# (about 1 s of a 30 Hz camera), so one bad frame does not leave the node at WARN for good;
# the totals since start are reported as values.
LEVEL_WINDOW = 30
OUTCOMES = ("processed", "dropped_stale", "rejected", "errors")  # of one taken frame
_STALE_HINT = ("a recording played with its original stamps? `dudes replay` restamps to now "
               "by default; with `--clock` run the node with use_sim_time:=true; "
               "max_input_age:=0.0 turns the check off")


def topic(camera: str, name: str) -> str:
    """Relative topic of ``name`` for ``camera`` ("" = un-prefixed single camera)."""
    return f"{camera}/{name}" if camera else name


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


@dataclass
class _Camera:
    """Publishers of one camera, by topic suffix (``OUTPUT_TOPICS``)."""

    publishers: dict[str, CdrPublisher]


class DudesNode(Node):
    """Lifecycle node; see the README's topic and parameter tables."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("dudes_node", **kwargs)
        params.declare_parameters(self)
        self.config: params.NodeConfig | None = None
        self.core: PerceptionCore | None = None
        self.calibration: dict | None = None
        self.stats = Stats()
        self._typestore = get_typestore(OUTPUT_TYPESTORE)
        self._cameras: dict[str, _Camera] = {}
        self._image_subscriptions: dict[str, Any] = {}
        self._intake: Intake | None = None
        self._publisher_pool: ThreadPoolExecutor | None = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_log: dict[str, float] = {}
        self._live_outputs: dict[str, frozenset[str]] = {}  # camera -> image outputs built
        self._active = False
        self._lifecycle_state = "unconfigured"
        self._failure: str | None = None  # why the last configure/activate failed
        self._inputs: health.InputWatch | None = None  # while active
        self._trained_on: dict | None = None  # of the configured model
        self._warned_models: set[Path] = set()  # synthetic-only warning given, once each
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # /diagnostics exists in every lifecycle state (a monitor tells a node that failed to
        # configure from one that is not there) and runs on the steady clock, so it keeps
        # going under use_sim_time when /clock stops.
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = None
        self._start_diagnostics(self._initial_diagnostics_period())

    # --- lifecycle -------------------------------------------------------------------------

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self.config = params.NodeConfig.from_values(params.read_values(self))
            self._load_model()
            self._report_training()
        except Exception as exc:  # noqa: BLE001 - any failure must leave the node unconfigured
            self.get_logger().error(f"configure failed: {exc}")
            self._release()
            self._failure = f"configure failed: {exc}"
            return TransitionCallbackReturn.FAILURE
        self._failure = None
        output_qos = self._qos(self.config.qos_output_reliability, self.config.qos_output_depth)
        for camera in self.config.camera_names:
            pubs = {name: CdrPublisher(self.create_lifecycle_publisher(
                        MSG_CLASSES[msgtype], topic(camera, name), output_qos),
                        self._typestore, msgtype)
                    for name, msgtype in OUTPUT_TOPICS.items()}
            self._cameras[camera] = _Camera(pubs)
        self._start_diagnostics(self.config.diagnostics_period)
        self._lifecycle_state = "inactive"
        self.get_logger().info(
            f"configured: cameras {self.config.camera_names}, backend "
            f"{self.core.predictor.backend}, OOD {self.core.ood}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        if self.core is None:  # released by a previous deactivate
            try:
                self._load_model()
            except Exception as exc:  # noqa: BLE001 - stay inactive, say why
                self.get_logger().error(f"activate failed reloading the model: {exc}")
                self._failure = f"activate failed reloading the model: {exc}"
                return TransitionCallbackReturn.FAILURE
        self._failure = None
        qos = self._qos(self.config.qos_reliability, self.config.qos_depth)
        worker_owned = WorkerOwned()
        inputs = []
        for camera in self.config.camera_names:
            name, msgtype = self._input_topic(camera)
            # The callback never runs: no executor runs a WorkerOwned group; Intake takes the
            # CDR bytes, which rosbags decodes into numpy views (rclpy would copy them 3 times).
            sub = self.create_subscription(
                MSG_CLASSES[msgtype], name, lambda msg: None, qos, callback_group=worker_owned,
                raw=True)
            self._image_subscriptions[camera] = sub
            inputs.append(health.Input(camera, topic(camera, "image"), sub.topic_name, msgtype))
            self.get_logger().info(health.input_line(
                inputs[-1], self.config.transport, self.resolve_topic_name(inputs[-1].relative)))
        self._inputs = health.InputWatch(self, inputs, self.config.qos_reliability == "reliable")
        self._intake = Intake(self.context, self._image_subscriptions)
        self._stop.clear()
        self._publisher_pool = ThreadPoolExecutor(PUBLISH_THREADS, "dudes_publish")
        self._worker = threading.Thread(target=self._work, name="dudes_worker", daemon=True)
        self._worker.start()
        self._active = True
        self._lifecycle_state = "active"
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_streaming()
        self._close_predictor()  # frees GPU memory; activate loads the model again
        self._lifecycle_state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        self._lifecycle_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._release()
        self._lifecycle_state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        self._release()
        self._lifecycle_state = "unconfigured"
        self._failure = self._failure or "a transition raised an error; see the node's log"
        return TransitionCallbackReturn.SUCCESS

    # --- setup and teardown ----------------------------------------------------------------

    def _load_model(self) -> None:
        from dudes_ros.inference.factory import create_predictor

        config = self.config
        model = self._model_path()
        if not model.is_file():
            raise ConfigError(f"parameter model: invalid value {config.model!r}; expected an "
                              f"existing .onnx or .pt file ({model} does not exist)")
        self.calibration = ood_calibration(model)
        ood = OodConfig.from_calibration(
            self.calibration, pixel_threshold=config.ood_pixel_threshold,
            frame_threshold=config.ood_frame_threshold, raise_after=config.ood_raise_after,
            clear_after=config.ood_clear_after)
        predictor = create_predictor(model, backend=config.backend, device=config.device,
                                     engine=config.engine_settings())
        log = self.get_logger()
        (log.warning if predictor.cpu_fallback else log.info)(
            f"backend {predictor.backend}: {predictor.selected_because}")
        self.core = PerceptionCore(predictor, ood, config.camera_names,
                                   output_scale=config.output_scale)

    def _model_path(self) -> Path:
        return Path(self.config.model) if self.config.model else _bundled_model()

    def _report_training(self) -> None:
        """Log what the model was trained on; warn, once per model file, when that was never
        a real camera image (the node runs it on real frames without another word)."""
        model = self._model_path()
        self._trained_on = health.model_trained_on(model)
        self.get_logger().info(f"model trained on {health.trained_on_text(self._trained_on)}")
        warning = health.synthetic_warning(self._trained_on, model)
        if warning and model.resolve() not in self._warned_models:
            self._warned_models.add(model.resolve())
            self.get_logger().warning(warning)

    def _input_topic(self, camera: str) -> tuple[str, str]:
        """``(topic, type)`` this camera reads (``params.input_topic`` on the remapped base
        topic); a remapping of ``<base>/compressed`` itself is honoured as given."""
        base = topic(camera, "image")
        name, msgtype = params.input_topic(self.resolve_topic_name(base), self.config.transport)
        own = f"{base}/compressed"
        if msgtype == COMPRESSED_IMAGE and (
                self.resolve_topic_name(own) != self.resolve_topic_name(own, only_expand=True)):
            name = self.resolve_topic_name(own)
        return name, msgtype

    def _qos(self, reliability: str, depth: int) -> QoSProfile:
        policy = (ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort"
                  else ReliabilityPolicy.RELIABLE)
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=policy)

    def _stop_streaming(self) -> None:
        self._active = False
        self._stop.set()
        if self._intake is not None:
            self._intake.wake()
        if self._worker is not None:
            self._worker.join()
        self._worker = None
        if self._publisher_pool is not None:
            self._publisher_pool.shutdown()
        self._publisher_pool = None
        if self._intake is not None:
            self._intake.close()
        self._intake = None
        for sub in self._image_subscriptions.values():
            self.destroy_subscription(sub)
        self._image_subscriptions = {}
        self._inputs = None

    def _close_predictor(self) -> None:
        if self.core is not None:
            self.core.predictor.close()
        self.core = None

    def _release(self) -> None:
        self._stop_streaming()
        self._close_predictor()
        for camera in self._cameras.values():
            for pub in camera.publishers.values():
                self.destroy_lifecycle_publisher(pub.publisher)
        self._cameras = {}
        self._live_outputs = {}
        self._trained_on = None
        self.config = None

    def _initial_diagnostics_period(self) -> float:
        """The declared ``diagnostics_period``, or its default while the value is invalid
        (configure then fails naming it, and /diagnostics reports that)."""
        value = self.get_parameter("diagnostics_period").value
        if params.validate("diagnostics_period", value) is None:
            return float(value)
        return float(params.BY_NAME["diagnostics_period"].default)

    def _start_diagnostics(self, period: float) -> None:
        timer = self._diagnostics_timer
        if timer is not None and abs(timer.timer_period_ns - period * 1e9) < 1:
            return
        if timer is not None:
            self.destroy_timer(timer)
        self._diagnostics_timer = self.create_timer(
            period, self._publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))

    # --- parameters ------------------------------------------------------------------------

    def _on_set_parameters(self, changes: list[Any]) -> SetParametersResult:
        configured = self.config is not None
        for change in changes:
            reason = params.check_change(change.name, change.value, configured)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        if configured:
            values = {c.name: c.value for c in changes if c.name in params.BY_NAME}
            try:
                self._apply_runtime(values)
            except ValueError as exc:  # e.g. a NaN threshold on a model without calibration
                return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply_runtime(self, values: dict[str, Any]) -> None:
        merged = {spec.name: self.config.value(spec.name) for spec in params.PARAMETERS}
        merged.update(values)
        config = params.NodeConfig.from_values(merged)
        if self.core is not None:
            self.core.set_ood(OodConfig.from_calibration(
                self.calibration, pixel_threshold=config.ood_pixel_threshold,
                frame_threshold=config.ood_frame_threshold, raise_after=config.ood_raise_after,
                clear_after=config.ood_clear_after))
        self.config = config

    # --- streaming -------------------------------------------------------------------------

    def _work(self) -> None:
        intake = self._intake
        while not self._stop.is_set():
            try:
                taken = intake.take_latest(timeout=0.25)
            except Exception as exc:  # noqa: BLE001 - keep streaming; counted and logged
                if not self.context.ok():  # rcl refuses a wait on a context shut down under it
                    return
                self.stats.count("errors")
                self._log_throttled("take", f"taking camera messages failed: {exc!r}",
                                    error=True)
                self._stop.wait(0.1)
                continue
            self.stats.count("in", taken.arrived)
            self._inputs.arrived(taken.messages)
            self.stats.count("dropped_superseded", taken.superseded)
            if taken.messages and not self._stop.is_set():
                try:
                    self._step(taken)
                except Exception as exc:  # noqa: BLE001 - keep streaming; counted and logged
                    self.stats.count("errors")
                    self._log_throttled("error", f"processing failed: {exc!r}", error=True)

    def _step(self, taken: Taken) -> None:
        config, core = self.config, self.core
        now_ns = self.get_clock().now().nanoseconds  # node clock: sim time under use_sim_time
        frames, headers, ages = {}, {}, {}
        msgtype = COMPRESSED_IMAGE if config.transport == "compressed" else IMAGE
        for camera, raw in taken.messages.items():
            try:
                msg = self._typestore.deserialize_cdr(memoryview(raw), msgtype)  # views
            except Exception as exc:  # noqa: BLE001 - foreign bytes: whatever fails, reject
                self.stats.reject("cdr")
                self._log_throttled("cdr", f"camera {camera!r}: rejected a message that is not "
                                    f"a CDR-encoded {msgtype}: {exc!r}")
                continue
            stamp = stamp_ns(msg.header)
            age = (now_ns - stamp) * 1e-9 if stamp else math.nan
            if config.max_input_age > 0 and age > config.max_input_age:
                self.stats.count("dropped_stale")
                self._log_throttled("stale", f"camera {camera!r}: dropped a frame whose header "
                                    f"stamp is {age:.3f} s old (frame_id "
                                    f"{msg.header.frame_id!r}): older than max_input_age "
                                    f"{config.max_input_age} s. {_STALE_HINT}")
                continue
            try:
                if msgtype == COMPRESSED_IMAGE:
                    frames[camera] = compressed_to_rgb(msg, config.max_pixels)
                else:
                    frames[camera] = image_to_rgb(msg, config.max_pixels)
            except ImageRejected as exc:
                self.stats.reject(exc.reason)
                self._log_throttled(exc.reason, f"camera {camera!r}: rejected frame "
                                    f"(frame_id {msg.header.frame_id!r}): {exc}")
                continue
            problem = core.predictor.size_problem(*frames[camera].shape[:2])
            if problem:  # e.g. outside the TensorRT engine's profile: this camera only
                del frames[camera]
                self.stats.reject("size")
                self._log_throttled("size", f"camera {camera!r}: rejected frame: {problem}")
                continue
            headers[camera], ages[camera] = msg.header, age
        if not frames:
            return
        results = core.process(frames)
        published: dict[str, list[Future]] = {}
        try:
            for camera, result in results.items():
                published[camera] = self._publish(camera, headers[camera], result)
        finally:  # every task submitted ends before the next step uses the publishers
            wait([f for futures in published.values() for f in futures])
        for camera, result in results.items():
            done_ns = max(f.result() for f in published[camera])  # raises a task's error
            latency = (done_ns - taken.arrived_ns[camera]) * 1e-6
            self.stats.count("processed")
            self.stats.add(inference_ms=result.inference_ms, node_latency_ms=latency,
                           node_overhead_ms=latency - result.inference_ms,
                           header_age_ms=ages[camera] * 1e3, alarm=float(result.alarm))

    def _publish(self, camera: str, header: Any, result: FrameResult) -> list[Future]:
        """Every output of one frame, built with ``OutputBuilder`` (as ``process-bag`` builds
        them) and published as CDR through rcl (``CdrPublisher``: one copy of each image before
        the middleware's, where an rclpy message costs three). Each output is built and sent
        by a task of the publisher pool, whose futures give the steady time it was sent; the
        worker waits for them all before its next step, so one topic's ``CdrPublisher`` is
        never used by two threads at once."""
        pubs = self._cameras[camera].publishers
        # Image outputs nobody subscribes to are neither built nor copied; asked every frame,
        # so a subscriber that arrives gets the next frame. ood and ood_alarm always go out.
        live = frozenset(name for name in IMAGE_TOPICS
                         if pubs[name].publisher.get_subscription_count() > 0)
        self._live_outputs[camera] = live
        builder = OutputBuilder(self._typestore, live,
                                node_name=self.get_fully_qualified_name())
        header = builder.header(header)

        def send(name: str) -> int:
            pubs[name].publish(builder.message(name, header, camera or "camera", result))
            return time.monotonic_ns()
        return [self._publisher_pool.submit(send, name) for name in builder.names()]

    def _log_throttled(self, key: str, text: str, error: bool = False) -> None:
        now = time.monotonic()
        period = self.config.reject_log_period if self.config else 5.0
        if now - self._last_log.get(key, -math.inf) >= period:
            self._last_log[key] = now
            logger = self.get_logger()
            (logger.error if error else logger.warning)(text)

    # --- diagnostics -----------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        core = self.core
        values = [("state", self._lifecycle_state)]
        if self._failure:
            values.append(("error", self._failure))
        if core is not None:
            values += [(f"model_{k}" if k != "backend" else k, str(v))
                       for k, v in core.predictor.provenance().items()]
            values.append(("backend_cpu_fallback", str(core.predictor.cpu_fallback).lower()))
            values += [("ood_pixel_threshold", f"{core.ood.pixel_threshold:.6f}"),
                       ("ood_frame_threshold", f"{core.ood.frame_threshold:.6f}")]
        if self._trained_on is not None:
            values.append(("trained_on", health.trained_on_text(self._trained_on)))
        inputs = self._inputs
        if inputs is not None:
            values.append(("inputs", "; ".join(f"{camera or 'camera'}: {inp.describe()}"
                                               for camera, inp in inputs.inputs.items())))
        if self._cameras:  # "rcl", or "rclpy" where librcl could not be called (CdrPublisher)
            values.append(("outputs_published_via",
                           next(iter(self._cameras.values())).publishers["ood"].via))
            if self._intake is not None:  # "rcl", or "rclpy" where librcl could not be called
                values.append(("inputs_taken_via", self._intake.via))
            live = dict(self._live_outputs)  # as of each camera's last published frame
            values.append(("live_outputs", "; ".join(
                f"{camera or 'camera'}: "
                + ",".join([*sorted(live.get(camera, ())), "ood", "ood_alarm"])
                for camera in self._cameras)))
        values += self.stats.summary()
        problems = inputs.problems(self.config.input_timeout) if inputs is not None else []
        if core is not None and core.predictor.cpu_fallback:  # a GPU machine running on the CPU
            problems.append(f"running on the CPU: {core.predictor.selected_because}")
        level, message = health.level_and_message(
            self._failure, self._lifecycle_state, problems,
            self.stats.recent_outcomes(),
            self.config.max_input_age if self.config else math.nan)
        status = DiagnosticStatus(
            level=_LEVEL[level], name=f"{self.get_fully_qualified_name()}: inference",
            hardware_id=",".join(self.config.camera_names) if self.config else "",
            message=message, values=[KeyValue(key=k, value=v) for k, v in values])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(msg)


def _bundled_model() -> Path:
    from dudes_ros.resources import bundled_model

    return bundled_model()


def main(args: list[str] | None = None) -> int:
    """Console script ``dudes_node``: spin the node; autostart configures and activates it.
    ``-h``/``--help`` prints the usage and returns 0 without starting ROS; any other argument
    before ``--ros-args`` is refused (ROS would ignore it: a ``-p`` there sets nothing)."""
    argv = sys.argv[1:] if args is None else list(args)
    if usage.wants_help(argv):
        print(usage.usage(), end="")
        return 0
    stray = usage.stray_arguments(argv)
    if stray:
        print(f"dudes_node: error: unrecognised argument(s) {stray}; ROS arguments go after "
              "--ros-args, e.g. dudes_node --ros-args -r image:=/camera/image_raw (dudes_node "
              "--help)", file=sys.stderr)
        return 2
    rclpy.init(args=args)
    node = DudesNode()
    code = 0
    try:
        if node.get_parameter("autostart").value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                code = 1
            elif node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                code = 1
        if code == 0:
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # A SIGTERM/SIGINT that shuts the context down while the executor builds its wait set
        # surfaces as an RCLError ("context is not valid") instead of ExternalShutdownException:
        # that is a normal stop. Anything raised with a live context is a real failure.
        if node.context.ok():
            raise
    finally:
        if node.config is not None:
            if node.context.ok():
                node.trigger_shutdown()
            else:  # no transitions without a context, but still stop the worker and the model
                node._stop_streaming()
                node._close_predictor()
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
