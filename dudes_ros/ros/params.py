"""The node's parameters: a frozen ``NodeConfig`` made of the domain's own settings objects.

``NodeConfig`` holds what each part of the node is configured with: the intake
(``IntakeSettings``), the outputs, the OOD scoring (``perception.OodConfig``), the TensorRT
engine (``runtime.tensorrt_engine.EngineSettings``), the anomaly regions
(``anomaly_regions.RegionConfig``), the flat-ground model (``ground.FlatGround``) and the
diagnostics. Each object checks its own values in ``__post_init__``, naming the parameter and
the value; ``NodeConfig.from_values`` builds it with ``dudes_ros.config.load_config`` from
``{parameter name: value}``, the names being the dotted keys of its fields
(``dudes_ros.config.keys``).

``PARAMETERS`` adds what the fields cannot say: each parameter's description and whether it may
change while the node is configured; its type and default are the field's, as ROS spells them
(``""`` for None, ``HEIGHTxWIDTH`` for an image size, 0 for the engine's batch of one slot per
camera and for no flat ground). It is plain Python so the launch file (checking its
arguments), ``dudes_node --help`` and docs/node.md read it without a ROS graph.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dudes_ros.anomaly_regions import RegionConfig
from dudes_ros.config import (
    FLATTEN,
    ConfigError,
    Leaf,
    check,
    key,
    keys,
    load_config,
    optional_of,
)
from dudes_ros.ground import FlatGround
from dudes_ros.inference.factory import BACKENDS
from dudes_ros.messages.conversions import DEFAULT_MAX_PIXELS
from dudes_ros.messages.types import COMPRESSED_IMAGE, IMAGE
from dudes_ros.perception import OodConfig
from dudes_ros.runtime.cuda import device_problem
from dudes_ros.runtime.precision import PRECISIONS
from dudes_ros.runtime.tensorrt_engine import EngineSettings

RELIABILITIES = ("best_effort", "reliable")
TRANSPORTS = ("raw", "compressed")
# The default input_timeout: diagnostic_aggregator's default stale timeout, so a monitor and
# this node call a silent camera silent at the same age; it is well above Fast DDS discovery on
# one host (under 1 s) and the frame period of any camera of 1 Hz or faster.
INPUT_TIMEOUT = 5.0
# A ROS name part: letters, digits and '_', not starting with a digit.
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


def _at_least(value: float, low: float) -> bool:
    return not math.isnan(value) and value >= low


@dataclass(frozen=True)
class IntakeSettings:
    """How frames come in: the cameras (``[""]``: one, un-prefixed), their transport and
    subscription QoS, and what the worker and /diagnostics judge them by."""

    cameras: tuple[str, ...] = ()
    transport: str = "raw"
    reliability: str = field(default="best_effort", metadata=key("qos.reliability"))
    depth: int = field(default=1, metadata=key("qos.depth"))
    max_input_age: float = 0.5
    max_pixels: int = DEFAULT_MAX_PIXELS
    input_timeout: float = INPUT_TIMEOUT

    def __post_init__(self) -> None:
        names = list(self.cameras)
        check(all(re.fullmatch(_NAME, c) for c in names) and len(set(names)) == len(names),
              "cameras", names, "distinct names of letters, digits and '_' not starting with a "
              "digit (each becomes a topic namespace), or an empty list for one camera")
        check(self.transport in TRANSPORTS, "transport", self.transport,
              f"one of {list(TRANSPORTS)}")
        check(self.reliability in RELIABILITIES, "qos.reliability", self.reliability,
              f"one of {list(RELIABILITIES)}")
        check(self.depth >= 1, "qos.depth", self.depth, "a number >= 1")
        check(_at_least(self.max_input_age, 0.0), "max_input_age", self.max_input_age,
              "a number >= 0.0")
        check(self.max_pixels >= 1, "max_pixels", self.max_pixels, "a number >= 1")
        check(_at_least(self.input_timeout, 0.0), "input_timeout", self.input_timeout,
              "a number >= 0.0")

    @property
    def camera_names(self) -> list[str]:
        """Cameras as used for topic prefixes: ``[""]`` for the single un-prefixed camera."""
        return list(self.cameras) or [""]


@dataclass(frozen=True)
class OutputSettings:
    """The image outputs' size relative to the input and the publishers' QoS."""

    scale: float = field(default=1.0, metadata=key("output_scale"))
    reliability: str = field(default="reliable", metadata=key("qos.output_reliability"))
    depth: int = field(default=1, metadata=key("qos.output_depth"))

    def __post_init__(self) -> None:
        check(0.0 < self.scale <= 1.0, "output_scale", self.scale, "a number in (0, 1]")
        check(self.reliability in RELIABILITIES, "qos.output_reliability", self.reliability,
              f"one of {list(RELIABILITIES)}")
        check(self.depth >= 1, "qos.output_depth", self.depth, "a number >= 1")


@dataclass(frozen=True)
class DiagnosticsSettings:
    """How often /diagnostics is published and each rejection reason logged (seconds)."""

    period: float = field(default=1.0, metadata=key("diagnostics_period"))
    reject_log_period: float = 5.0

    def __post_init__(self) -> None:
        check(not math.isnan(self.period) and self.period > 0.0, "diagnostics_period",
              self.period, "a number > 0.0")
        check(_at_least(self.reject_log_period, 0.0), "reject_log_period",
              self.reject_log_period, "a number >= 0.0")


# The node's engine: one batch slot per camera unless engine.max_batch says otherwise.
NODE_ENGINE = EngineSettings(max_batch=0)


@dataclass(frozen=True)
class NodeConfig:
    """Everything the node is configured with; ``engine.max_batch`` 0 is filled in with the
    number of cameras, ``ground`` is None without a flat-ground model (``ground.height`` 0)."""

    model: str = ""
    backend: str = "auto"
    device: str = "auto"
    intake: IntakeSettings = field(default_factory=IntakeSettings, metadata=FLATTEN)
    outputs: OutputSettings = field(default_factory=OutputSettings, metadata=FLATTEN)
    ood: OodConfig = field(default_factory=OodConfig)
    regions: RegionConfig = field(default_factory=RegionConfig)
    regions_segmentation_class: int = field(default=-1,
                                            metadata=key("regions.segmentation_class"))
    ground: FlatGround | None = None
    depth_topic: str = ""
    diagnostics: DiagnosticsSettings = field(default_factory=DiagnosticsSettings,
                                             metadata=FLATTEN)
    engine: EngineSettings = NODE_ENGINE
    autostart: bool = True

    def __post_init__(self) -> None:
        check(self.backend in BACKENDS, "backend", self.backend, f"one of {list(BACKENDS)}")
        problem = device_problem(self.device)
        check(problem is None, "device", self.device, problem or "")
        check(self.regions_segmentation_class == -1 or
              0 <= self.regions_segmentation_class <= 255, "regions.segmentation_class",
              self.regions_segmentation_class, "-1 (off) or a class id in 0..255")
        check(not self.depth_topic or re.fullmatch(rf"{_NAME}(/{_NAME})*", self.depth_topic),
              "depth_topic", self.depth_topic, "'' or a topic name relative to each camera's "
              "namespace, e.g. depth/image_raw")
        changed = [f.name for f in dataclasses.fields(EngineSettings)
                   if getattr(self.engine, f.name) != getattr(NODE_ENGINE, f.name)]
        if changed and self.backend not in ("auto", "tensorrt"):
            raise ConfigError(f"engine.{changed[0]}: invalid value "
                              f"{getattr(self.engine, changed[0])!r}; the engine.* parameters "
                              "configure TensorRT and apply only with backend 'tensorrt' or "
                              f"'auto', not {self.backend!r}")
        if self.engine.max_batch == 0:  # frozen: the one place the config completes itself
            object.__setattr__(self, "engine", dataclasses.replace(
                self.engine, max_batch=len(self.intake.camera_names)))

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> NodeConfig:
        """Build from ``{parameter name: value}`` as ROS gives them (missing names take their
        defaults); raises ``ConfigError`` naming the first invalid parameter and its value."""
        unknown = sorted(set(values) - set(BY_NAME))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {unknown}; declared: {sorted(BY_NAME)}")
        try:
            settings = {name: _from_ros(name, value) for name, value in values.items()}
            height = settings.get("ground.height", 0.0)
            if height == 0.0 and not isinstance(height, bool):  # no flat ground: None
                settings = {k: v for k, v in settings.items() if not k.startswith("ground.")}
            return load_config(cls, settings)
        except ConfigError as exc:
            raise ConfigError(f"parameter {exc}") from None


LEAVES: dict[str, Leaf] = keys(NodeConfig)


def _type_name(tp: Any) -> str:
    """The ROS parameter type a field is declared with; None is spelled ``""``, an image size
    ``HEIGHTxWIDTH``, both as strings."""
    if optional_of(tp) is not None:
        return "string"
    if typing.get_origin(tp) is tuple:
        return "string[]"
    return {bool: "bool", int: "int", float: "double", str: "string"}[tp]


def _to_ros(leaf: Leaf) -> Any:
    """A field's default as a ROS parameter value."""
    value = leaf.default
    if value is None:
        return ""
    if value is dataclasses.MISSING:  # ground.height: 0 = no flat-ground model
        return 0.0
    if isinstance(value, tuple):
        return list(value)
    return value


def _from_ros(name: str, value: Any) -> Any:
    """A ROS parameter value as its field's type: ``""`` -> None, ``HEIGHTxWIDTH`` -> (H, W),
    an unset string array (None) -> ()."""
    tp = LEAVES[name].type
    inner = optional_of(tp)
    if inner is not None and value == "":
        return None
    if typing.get_origin(inner) is tuple and isinstance(value, str):
        match = re.fullmatch(r"(\d+)[xX](\d+)", value)
        check(match is not None, name, value,
              "HEIGHTxWIDTH (e.g. 1024x2048), or '' for the default")
        return int(match[1]), int(match[2])
    if typing.get_origin(tp) is tuple and value is None:
        return ()
    return value


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter; its type and default are those of ``NodeConfig``'s field
    ``name`` (``LEAVES``), as ROS spells them (``[]`` is a string array)."""

    name: str
    description: str
    runtime: bool = False  # may change while the node is configured

    @property
    def default(self) -> Any:
        return _to_ros(LEAVES[self.name])

    @property
    def type_name(self) -> str:
        return _type_name(LEAVES[self.name].type)


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("model", "student model: .onnx with its .json manifest beside it, or a .pt "
              "student checkpoint; empty = the bundled engines/dudes_student.onnx"),
    ParamSpec("backend", f"inference backend, one of {list(BACKENDS)}; auto = with a "
              "CUDA GPU: TensorRT, else ONNX Runtime's CUDA provider, else torch on CUDA; the "
              "CPU (ONNX Runtime) only when no GPU path can run the model"),
    ParamSpec("device", "'auto', 'cpu', 'cuda' or 'cuda:N' (GPU N, honoured by every "
              "backend)"),
    ParamSpec("cameras", "camera names; each gets <name>/image in and <name>/segmentation, "
              "... out, all inferred as one batch; empty = one camera, un-prefixed topics"),
    ParamSpec("transport", "input, as image_transport names it: 'raw' subscribes to "
              "the base topic image (remap it: -r image:=/camera/image_raw) as "
              "sensor_msgs/Image, 'compressed' to <base>/compressed (/camera/image_raw/"
              "compressed) as sensor_msgs/CompressedImage (JPEG/PNG)"),
    ParamSpec("qos.reliability", "input subscription reliability "
              "(best_effort = sensor-data QoS)"),
    ParamSpec("qos.depth", "input subscription history depth"),
    ParamSpec("qos.output_reliability", "reliability of the output publishers"),
    ParamSpec("qos.output_depth", "history depth of the output publishers"),
    ParamSpec("max_input_age", "seconds; frames whose header stamp is older than this "
              "(node clock: bag time under use_sim_time) when the worker takes them are "
              "dropped, counted and logged; 0 = never", runtime=True),
    ParamSpec("output_scale", "size of the image outputs relative to the input (labels "
              "by nearest neighbour, uncertainty by area averaging, confidence from the scaled "
              "uncertainty; the OOD score is always taken at full size); 1.0 = the input's "
              "size, which nav2's semantic_segmentation_layer needs"),
    ParamSpec("max_pixels", "largest accepted width*height; bigger claims are "
              "rejected before any allocation"),
    ParamSpec("ood.pixel_threshold", "a pixel is uncertain when u > this; NaN = "
              "the model manifest's calibrated value", runtime=True),
    ParamSpec("ood.frame_threshold", "a frame is over threshold when its uncertain-"
              "pixel fraction > this; NaN = the manifest's calibrated value", runtime=True),
    ParamSpec("ood.raise_after", "alarm rises after this many "
              "consecutive frames over threshold", runtime=True),
    ParamSpec("ood.clear_after", "alarm clears after this many "
              "consecutive frames under threshold", runtime=True),
    ParamSpec("regions.min_area", "smallest anomaly region, fraction of the image area in "
              "[0, 1)", runtime=True),
    ParamSpec("regions.opening", "odd side in pixels of the opening that removes specks from "
              "the anomaly mask; 1 = none", runtime=True),
    ParamSpec("regions.grow", "regions grow over connected pixels with u > this x "
              "ood.pixel_threshold, in (0, 1]; 1 = no growth", runtime=True),
    ParamSpec("regions.track_iou", "box IoU in (0, 1] a region needs with one of the previous "
              "frame to keep its id", runtime=True),
    ParamSpec("regions.max_missed", "frames a region may go unseen before its id is retired",
              runtime=True),
    ParamSpec("regions.segmentation_class", "class id 0..255 written into segmentation on "
              "anomalous pixels (an obstacle class for nav2's semantic_segmentation_layer); "
              "-1 = off", runtime=True),
    ParamSpec("ground.height", "metres of the camera's optical centre above a level road; "
              "0 = no flat-ground model (no anomaly points unless depth_topic is set)"),
    ParamSpec("ground.pitch", "radians the camera is pitched down (negative: up), "
              "|pitch| < pi/2"),
    ParamSpec("ground.max_range", "metres; ground-contact points farther ahead are dropped"),
    ParamSpec("depth_topic", "depth image registered to each camera, relative to its "
              "namespace (e.g. depth/image_raw); '' = none"),
    ParamSpec("input_timeout", "seconds without a frame on a camera's input "
              "(since activation or its last frame) after which /diagnostics turns WARN, naming "
              "the topic, its type and what the graph shows there; 0 = never", runtime=True),
    ParamSpec("diagnostics_period", "seconds between /diagnostics messages"),
    ParamSpec("reject_log_period", "seconds; each rejection reason is logged at most "
              "once per period", runtime=True),
    ParamSpec("engine.precision", f"TensorRT engine precision, one of {list(PRECISIONS)}; "
              "int8 needs engine.calibration_folder"),
    ParamSpec("engine.max_batch", "largest batch the TensorRT engine takes; 0 = the number "
              "of cameras (larger groups are split)"),
    ParamSpec("engine.opt_size", "HEIGHTxWIDTH the TensorRT engine is optimised for (set "
              "it to the cameras' resolution); '' = the model's network input size"),
    ParamSpec("engine.max_size", "largest HEIGHTxWIDTH the TensorRT engine accepts; '' = "
              "2160x3840 (or engine.opt_size if larger)"),
    ParamSpec("engine.cache_dir", "folder of built TensorRT engines; '' = cache/ beside the "
              "model, or ~/.cache/dudes_ros/engines where that is not writable"),
    ParamSpec("engine.calibration_folder", "images for INT8 calibration (precision int8 "
              "only)"),
    ParamSpec("engine.workspace_gib", "TensorRT builder workspace limit, GiB"),
    ParamSpec("autostart", "configure and activate at start-up (for stacks without a "
              "lifecycle manager)"),
)

BY_NAME: dict[str, ParamSpec] = {spec.name: spec for spec in PARAMETERS}


def input_topic(base: str, transport: str) -> tuple[str, str]:
    """``(topic, message type)`` a camera reads, after image_transport's convention: the base
    topic (``image``, ``front/image`` or what it is remapped to) for ``raw``, ``<base>/compressed``
    for ``compressed``. The node and the launch file both decide with this."""
    if transport not in TRANSPORTS:
        raise ConfigError(f"parameter transport: invalid value {transport!r}; expected one of "
                          f"{list(TRANSPORTS)}")
    if transport == "compressed":
        return f"{base.rstrip('/')}/compressed", COMPRESSED_IMAGE
    return base, IMAGE


def validate(name: str, value: Any) -> str | None:
    """None when ``value`` is valid for parameter ``name`` on its own (the others at their
    defaults), else a message naming both. A rule between parameters (int8 and its calibration
    folder, the engine sizes, engine.* and the backend) is checked when the node configures."""
    try:
        NodeConfig.from_values({name: value})
    except ConfigError as exc:
        message = str(exc)
        own = message.startswith((f"parameter {name}:", f"parameter {name}[",
                                  "unknown parameter"))
        return message if own else None
    return None


def check_change(name: str, value: Any, configured: bool) -> str | None:
    """None when a runtime set of ``name`` to ``value`` is acceptable, else the reason."""
    if name not in BY_NAME:
        return None  # not ours (use_sim_time and other rclpy parameters)
    problem = validate(name, value)
    if problem:
        return problem
    if configured and not BY_NAME[name].runtime:
        return (f"parameter {name} cannot change while the node is configured; deactivate and "
                "clean up the node, set it, then configure again")
    return None


def declare_parameters(node: Any) -> None:
    """Declare every parameter of ``PARAMETERS`` on an rclpy node, with its description."""
    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.parameter import Parameter

    for spec in PARAMETERS:
        descriptor = ParameterDescriptor(description=spec.description)
        # rclpy infers an empty list as a byte array; declare the string-array type explicitly
        default = Parameter.Type.STRING_ARRAY if spec.default == [] else spec.default
        node.declare_parameter(spec.name, default, descriptor)


def read_values(node: Any) -> dict[str, Any]:
    """The current value of every declared parameter of ``PARAMETERS`` on ``node``."""
    from rclpy.exceptions import ParameterUninitializedException

    values = {}
    for spec in PARAMETERS:
        try:
            values[spec.name] = node.get_parameter(spec.name).value
        except ParameterUninitializedException:  # a string array never set: its default
            values[spec.name] = spec.default
    return values
