"""``dudes_node``: the lifecycle node, a thin adapter between ROS topics and ``PerceptionCore``.

Threads: the executor thread runs the diagnostics timer (steady clock, in every lifecycle
state), the lifecycle services and the parameter callbacks; while active, a ``Worker`` thread
waits on the image subscriptions itself (``Intake``: rclpy's executor would add about 2 ms per
frame), passes the newest frame of every camera through the ``FrameGate``, infers and hands
the outputs to its publisher pool. Nothing queues: a frame that arrives before the previous one
was taken is replaced in the subscription's ``qos.depth`` queue and counted as superseded.
This module holds the lifecycle, the subscriptions and the publishers; counters and
``/diagnostics`` are ``diagnostics``'s, their wording ``health``'s, the model ``loading``'s.
"""

from __future__ import annotations

import sys
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import Node, State, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.typesys import get_typestore
from sensor_msgs.msg import CompressedImage, Image, PointCloud2
from std_msgs.msg import Bool

from dudes_ros.messages.outputs import OUTPUT_TOPICS
from dudes_ros.messages.regions import POINT_CLOUD2
from dudes_ros.messages.types import (
    BOOL,
    COMPRESSED_IMAGE,
    DIAGNOSTIC_ARRAY,
    IMAGE,
    OUTPUT_TYPESTORE,
)
from dudes_ros.perception import PerceptionCore
from dudes_ros.ros import diagnostics, health, loading, params, usage
from dudes_ros.ros.camera_geometry import CameraGeometry, camera_topic
from dudes_ros.ros.cdr_publisher import CdrPublisher
from dudes_ros.ros.intake import Intake, WorkerOwned
from dudes_ros.ros.worker import Worker
from dudes_ros.runtime.manifest import model_trained_on

MSG_CLASSES = {IMAGE: Image, COMPRESSED_IMAGE: CompressedImage,  # inputs and OUTPUT_TOPICS
               DIAGNOSTIC_ARRAY: DiagnosticArray, BOOL: Bool, POINT_CLOUD2: PointCloud2}


class DudesNode(Node):
    """Lifecycle node; see docs/node.md for its topics and parameters. ``diagnostics`` and
    ``Worker`` read its public state: ``config``, ``core``, ``failure``, ``inputs``, ``intake``,
    ``camera_geometry``, ``output_publishers``, ``live_outputs``, ``trained_on``, ``stats``,
    ``typestore``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("dudes_node", **kwargs)
        params.declare_parameters(self)
        self.config: params.NodeConfig | None = None
        self.core: PerceptionCore | None = None
        self.calibration: dict | None = None
        self.stats = diagnostics.Stats()
        self.failure: str | None = None  # why the last configure/activate failed
        # camera -> {OUTPUT_TOPICS name: publisher}
        self.output_publishers: dict[str, dict[str, CdrPublisher]] = {}
        self.live_outputs: dict[str, frozenset[str]] = {}  # camera -> image outputs built
        self.inputs: health.InputWatch | None = None  # while active
        self.intake: Intake | None = None  # while active
        self.camera_geometry: CameraGeometry | None = None  # while active
        self.trained_on: dict | None = None  # of the configured model
        self.typestore = get_typestore(OUTPUT_TYPESTORE)
        self._subscriptions_by_camera: dict[str, Any] = {}
        self._worker: Worker | None = None
        self._warned_models: set = set()  # synthetic-only warning given, once per model file
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._diagnostics = diagnostics.DiagnosticsPublisher(self)

    @property
    def lifecycle_state(self) -> str:
        """``active``, ``inactive`` or ``unconfigured``, from what the node holds (rclpy keeps
        its state machine private)."""
        if self._worker is not None:
            return "active"
        return "inactive" if self.config is not None else "unconfigured"

    # --- lifecycle -------------------------------------------------------------------------

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self.config = params.NodeConfig.from_values(params.read_values(self))
            self._load_model()
            self._report_training()
        except Exception as exc:  # noqa: BLE001 - any failure must leave the node unconfigured
            return self._failed(f"configure failed: {exc}")
        self.failure = None
        output_qos = self._qos(self.config.outputs.reliability, self.config.outputs.depth)
        for camera in self.config.intake.camera_names:
            self.output_publishers[camera] = {
                name: CdrPublisher(self.create_lifecycle_publisher(
                    MSG_CLASSES[msgtype], camera_topic(camera, name), output_qos),
                    self.typestore, msgtype)
                for name, msgtype in OUTPUT_TOPICS.items()}
        self._diagnostics.restart(self.config.diagnostics.period)
        self.get_logger().info(
            f"configured: cameras {self.config.intake.camera_names}, backend "
            f"{self.core.predictor.backend}, OOD {self.core.ood}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        if self.core is None:  # released by a previous deactivate
            try:
                self._load_model()
            except Exception as exc:  # noqa: BLE001 - stay inactive, say why
                return self._failed(f"activate failed reloading the model: {exc}", release=False)
        self.failure = None
        settings = self.config.intake
        qos = self._qos(settings.reliability, settings.depth)
        worker_owned = WorkerOwned()
        inputs = []
        for camera in settings.camera_names:
            name, msgtype = self._input_topic(camera)
            # The callback never runs: no executor runs a WorkerOwned group; Intake takes the
            # CDR bytes, which rosbags decodes into numpy views (rclpy would copy them 3 times).
            sub = self.create_subscription(
                MSG_CLASSES[msgtype], name, lambda msg: None, qos, callback_group=worker_owned,
                raw=True)
            self._subscriptions_by_camera[camera] = sub
            inputs.append(health.Input(camera, camera_topic(camera, "image"), sub.topic_name,
                                       msgtype))
            self.get_logger().info(health.input_line(
                inputs[-1], settings.transport, self.resolve_topic_name(inputs[-1].relative)))
        self.inputs = health.InputWatch(self, inputs, settings.reliability == "reliable")
        self.intake = Intake(self.context, self._subscriptions_by_camera)
        self.camera_geometry = CameraGeometry(self, settings.camera_names,
                                              self.config.depth_topic, qos)
        self._worker = Worker(self, self.intake)
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_streaming()
        self._close_predictor()  # frees GPU memory; activate loads the model again
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        self._release()
        self.failure = self.failure or "a transition raised an error; see the node's log"
        return TransitionCallbackReturn.SUCCESS

    def _failed(self, why: str, release: bool = True) -> TransitionCallbackReturn:
        self.get_logger().error(why)
        if release:
            self._release()
        self.failure = why
        return TransitionCallbackReturn.FAILURE

    # --- setup and teardown ----------------------------------------------------------------

    def _load_model(self) -> None:
        self.core, self.calibration = loading.load_core(self.config)
        predictor = self.core.predictor
        log = self.get_logger()
        (log.warning if predictor.cpu_fallback else log.info)(
            f"backend {predictor.backend}: {predictor.selected_because}")

    def _report_training(self) -> None:
        """Log what the model was trained on; warn, once per model file, when that was never
        a real camera image (the node runs it on real frames without another word)."""
        model = loading.model_path(self.config)
        self.trained_on = model_trained_on(model)
        self.get_logger().info(f"model trained on {health.trained_on_text(self.trained_on)}")
        warning = health.synthetic_warning(self.trained_on, model)
        if warning and model.resolve() not in self._warned_models:
            self._warned_models.add(model.resolve())
            self.get_logger().warning(warning)

    def _input_topic(self, camera: str) -> tuple[str, str]:
        """``(topic, type)`` this camera reads (``params.input_topic`` on the remapped base
        topic); a remapping of ``<base>/compressed`` itself is honoured as given."""
        base = camera_topic(camera, "image")
        name, msgtype = params.input_topic(self.resolve_topic_name(base),
                                        self.config.intake.transport)
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
        if self._worker is not None:
            self._worker.stop()
        self._worker = None
        if self.intake is not None:
            self.intake.close()
        self.intake = None
        for sub in self._subscriptions_by_camera.values():
            self.destroy_subscription(sub)
        self._subscriptions_by_camera = {}
        if self.camera_geometry is not None:
            self.camera_geometry.close()
        self.camera_geometry = self.inputs = None

    def _close_predictor(self) -> None:
        if self.core is not None:
            self.core.predictor.close()
        self.core = None

    def _release(self) -> None:
        self._stop_streaming()
        self._close_predictor()
        for pubs in self.output_publishers.values():
            for pub in pubs.values():
                self.destroy_lifecycle_publisher(pub.publisher)
        self.output_publishers = {}
        self.live_outputs = {}
        self.trained_on = None
        self.config = None

    # --- parameters ------------------------------------------------------------------------

    def _on_set_parameters(self, changes: list[Any]) -> SetParametersResult:
        configured = self.config is not None
        for change in changes:
            reason = params.check_change(change.name, change.value, configured)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        if configured:
            # Called before the change is made: the node's parameters are still the old ones.
            merged = params.read_values(self)
            merged.update({c.name: c.value for c in changes if c.name in params.BY_NAME})
            try:
                config = params.NodeConfig.from_values(merged)
                if self.core is not None:
                    self.core.set_ood(loading.ood_config(self.calibration, config))
            except ValueError as exc:  # e.g. a NaN threshold on a model without calibration
                return SetParametersResult(successful=False, reason=str(exc))
            self.config = config
        return SetParametersResult(successful=True)


def main(args: list[str] | None = None) -> int:
    """Console script ``dudes_node``: spin the node; autostart configures and activates it.
    Help and stray arguments are answered without starting ROS (``usage``)."""
    answered = usage.answer_without_ros(sys.argv[1:] if args is None else list(args))
    if answered is not None:
        return answered
    rclpy.init(args=args)
    node = DudesNode()
    code, signalled = 0, False
    try:
        if node.get_parameter("autostart").value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                code = 1
            elif node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                code = 1
        if code == 0:
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        signalled = True
    except Exception:
        # A SIGTERM/SIGINT that shuts the context down while the executor builds its wait set
        # surfaces as an RCLError ("context is not valid") instead of ExternalShutdownException:
        # that is a normal stop. Anything raised with a live context is a real failure.
        if node.context.ok():
            raise
        signalled = True
    finally:
        if node.config is not None:
            # After a signal the context is being shut down, possibly still valid here: a
            # shutdown transition would then fail to publish its event (an rclpy ERROR line).
            if node.context.ok() and not signalled:
                node.trigger_shutdown()
            else:  # no transitions without a context, but still stop the worker and the model
                node._stop_streaming()
                node._close_predictor()
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
