"""The node's parameters: declared once here, validated, copied into a frozen ``NodeConfig``.

``PARAMETERS`` is the single table (name, default, description, validator, whether it may
change while the node is configured). ``declare_parameters`` declares all of them on a node
with their descriptions; ``NodeConfig.from_values`` validates a full set and names the bad
parameter and value; ``check_change`` says why a runtime change is refused. The table itself
is plain Python so the launch file (checking its arguments) and docs/node.md can read it
without a ROS graph.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dudes_ros.argtypes import image_size
from dudes_ros.config import ConfigError
from dudes_ros.inference.factory import BACKENDS
from dudes_ros.messages.conversions import DEFAULT_MAX_PIXELS
from dudes_ros.messages.types import COMPRESSED_IMAGE, IMAGE
from dudes_ros.ood import DEFAULT_CLEAR_AFTER, DEFAULT_RAISE_AFTER
from dudes_ros.runtime.cuda import device_problem
from dudes_ros.runtime.engine_cache import PRECISIONS
from dudes_ros.runtime.tensorrt_engine import EngineSettings

RELIABILITIES = ("best_effort", "reliable")
TRANSPORTS = ("raw", "compressed")
# The default input_timeout: diagnostic_aggregator's default stale timeout, so a monitor and
# this node call a silent camera silent at the same age; it is well above Fast DDS discovery on
# one host (under 1 s) and the frame period of any camera of 1 Hz or faster.
INPUT_TIMEOUT = 5.0

Validator = Callable[[Any], str | None]  # returns what was expected when the value is invalid


def _choice(*options: str) -> Validator:
    return lambda v: None if v in options else f"one of {list(options)}"


def _at_least(low: float, strict: bool = False) -> Validator:
    def validate(v: Any) -> str | None:
        ok = not (isinstance(v, float) and math.isnan(v)) and (v > low if strict else v >= low)
        return None if ok else f"a number {'>' if strict else '>='} {low}"
    return validate


def _threshold(v: float) -> str | None:
    if math.isnan(v) or 0.0 <= v <= 1.0:
        return None
    return "a number in [0, 1], or NaN (.nan in YAML) to use the model manifest's calibration"


def _scale(v: float) -> str | None:
    return None if 0.0 < v <= 1.0 else "a number in (0, 1]"


def _size(v: str) -> str | None:
    if not v:
        return None
    try:
        image_size(v)
    except argparse.ArgumentTypeError:
        return "HEIGHTxWIDTH with both sides >= 16 (e.g. 1024x2048), or '' for the default"
    return None


def _cameras(v: list[str]) -> str | None:
    names = list(v)
    bad = [c for c in names if not c or not all(ch.isalnum() or ch == "_" for ch in c)
           or c[0].isdigit()]
    if bad or len(set(names)) != len(names):
        return ("distinct names of letters, digits and '_' not starting with a digit "
                "(each becomes a topic namespace), or an empty list for one camera")
    return None


def _anything(_: Any) -> str | None:
    return None


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter; ``default`` fixes its ROS type (``[]`` is a string array)."""

    name: str
    default: Any
    description: str
    validate: Validator = _anything
    runtime: bool = False  # may change while the node is configured

    @property
    def field(self) -> str:
        return self.name.replace(".", "_")

    @property
    def type_name(self) -> str:
        if isinstance(self.default, list):
            return "string[]"
        return {bool: "bool", int: "int", float: "double", str: "string"}[type(self.default)]


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("model", "", "student model: .onnx with its .json manifest beside it, or a .pt "
              "student checkpoint; empty = the bundled engines/dudes_student.onnx"),
    ParamSpec("backend", "auto", f"inference backend, one of {list(BACKENDS)}; auto = with a "
              "CUDA GPU: TensorRT, else ONNX Runtime's CUDA provider, else torch on CUDA; the "
              "CPU (ONNX Runtime) only when no GPU path can run the model",
              _choice(*BACKENDS)),
    ParamSpec("device", "auto", "'auto', 'cpu', 'cuda' or 'cuda:N' (GPU N, honoured by every "
              "backend)", device_problem),
    ParamSpec("cameras", [], "camera names; each gets <name>/image in and <name>/segmentation, "
              "... out, all inferred as one batch; empty = one camera, un-prefixed topics",
              _cameras),
    ParamSpec("transport", "raw", "input, as image_transport names it: 'raw' subscribes to "
              "the base topic image (remap it: -r image:=/camera/image_raw) as "
              "sensor_msgs/Image, 'compressed' to <base>/compressed (/camera/image_raw/"
              "compressed) as sensor_msgs/CompressedImage (JPEG/PNG)", _choice(*TRANSPORTS)),
    ParamSpec("qos.reliability", "best_effort", "input subscription reliability "
              "(best_effort = sensor-data QoS)", _choice(*RELIABILITIES)),
    ParamSpec("qos.depth", 1, "input subscription history depth", _at_least(1)),
    ParamSpec("qos.output_reliability", "reliable", "reliability of the output publishers",
              _choice(*RELIABILITIES)),
    ParamSpec("qos.output_depth", 1, "history depth of the output publishers", _at_least(1)),
    ParamSpec("max_input_age", 0.5, "seconds; frames whose header stamp is older than this "
              "(node clock: bag time under use_sim_time) when the worker takes them are "
              "dropped, counted and logged; 0 = never",
              _at_least(0.0), runtime=True),
    ParamSpec("output_scale", 1.0, "size of the image outputs relative to the input (labels "
              "by nearest neighbour, uncertainty by area averaging, confidence from the scaled "
              "uncertainty; the OOD score is always taken at full size); 1.0 = the input's "
              "size, which nav2's semantic_segmentation_layer needs", _scale),
    ParamSpec("max_pixels", DEFAULT_MAX_PIXELS, "largest accepted width*height; bigger claims are "
              "rejected before any allocation", _at_least(1)),
    ParamSpec("ood.pixel_threshold", math.nan, "a pixel is uncertain when u > this; NaN = "
              "the model manifest's calibrated value", _threshold, runtime=True),
    ParamSpec("ood.frame_threshold", math.nan, "a frame is over threshold when its uncertain-"
              "pixel fraction > this; NaN = the manifest's calibrated value", _threshold,
              runtime=True),
    ParamSpec("ood.raise_after", DEFAULT_RAISE_AFTER, "alarm rises after this many "
              "consecutive frames over threshold", _at_least(1), runtime=True),
    ParamSpec("ood.clear_after", DEFAULT_CLEAR_AFTER, "alarm clears after this many "
              "consecutive frames under threshold", _at_least(1), runtime=True),
    ParamSpec("input_timeout", INPUT_TIMEOUT, "seconds without a frame on a camera's input "
              "(since activation or its last frame) after which /diagnostics turns WARN, naming "
              "the topic, its type and what the graph shows there; 0 = never",
              _at_least(0.0), runtime=True),
    ParamSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages",
              _at_least(0.0, strict=True)),
    ParamSpec("reject_log_period", 5.0, "seconds; each rejection reason is logged at most "
              "once per period", _at_least(0.0), runtime=True),
    ParamSpec("engine.precision", "fp16", f"TensorRT engine precision, one of "
              f"{list(PRECISIONS)}; int8 needs engine.calibration_folder",
              _choice(*PRECISIONS)),
    ParamSpec("engine.max_batch", 0, "largest batch the TensorRT engine takes; 0 = the number "
              "of cameras (larger groups are split)", _at_least(0)),
    ParamSpec("engine.opt_size", "", "HEIGHTxWIDTH the TensorRT engine is optimised for (set "
              "it to the cameras' resolution); '' = the model's network input size", _size),
    ParamSpec("engine.max_size", "", "largest HEIGHTxWIDTH the TensorRT engine accepts; '' = "
              "2160x3840 (or engine.opt_size if larger)", _size),
    ParamSpec("engine.cache_dir", "", "folder of built TensorRT engines; '' = cache/ beside the "
              "model, or ~/.cache/dudes_ros/engines where that is not writable"),
    ParamSpec("engine.calibration_folder", "", "images for INT8 calibration (precision int8 "
              "only)"),
    ParamSpec("engine.workspace_gib", 4.0, "TensorRT builder workspace limit, GiB",
              _at_least(0.0, strict=True)),
    ParamSpec("autostart", True, "configure and activate at start-up (for stacks without a "
              "lifecycle manager)"),
)

BY_NAME: dict[str, ParamSpec] = {spec.name: spec for spec in PARAMETERS}


@dataclass(frozen=True)
class NodeConfig:
    """Validated parameter values (dots in names become underscores)."""

    model: str
    backend: str
    device: str
    cameras: tuple[str, ...]
    transport: str
    qos_reliability: str
    qos_depth: int
    qos_output_reliability: str
    qos_output_depth: int
    max_input_age: float
    output_scale: float
    max_pixels: int
    ood_pixel_threshold: float
    ood_frame_threshold: float
    ood_raise_after: int
    ood_clear_after: int
    input_timeout: float
    diagnostics_period: float
    reject_log_period: float
    engine_precision: str
    engine_max_batch: int
    engine_opt_size: str
    engine_max_size: str
    engine_cache_dir: str
    engine_calibration_folder: str
    engine_workspace_gib: float
    autostart: bool

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> NodeConfig:
        """Build from ``{parameter name: value}`` (missing names take their defaults);
        raises ``ConfigError`` naming the first invalid parameter and its value."""
        unknown = sorted(set(values) - set(BY_NAME))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {unknown}; declared: {sorted(BY_NAME)}")
        kwargs = {}
        for spec in PARAMETERS:
            value = values.get(spec.name, spec.default)
            value = [] if value is None and isinstance(spec.default, list) else value
            problem = validate(spec.name, value)
            if problem:
                raise ConfigError(problem)
            kwargs[spec.field] = tuple(value) if isinstance(spec.default, list) else value
        config = cls(**kwargs)
        config.engine_settings()  # refuses impossible combinations now, not at first frame
        return config

    def engine_settings(self) -> EngineSettings:
        """The TensorRT engine the ``engine.*`` parameters describe; ``ConfigError`` naming
        the parameter when they contradict each other or the backend."""
        changed = [spec.name for spec in PARAMETERS if spec.name.startswith("engine.")
                   and self.value(spec.name) != spec.default]
        if changed and self.backend not in ("auto", "tensorrt"):
            name = changed[0]
            raise ConfigError(f"parameter {name}: invalid value {self.value(name)!r}; the "
                              "engine.* parameters configure TensorRT and apply only with "
                              f"backend 'tensorrt' or 'auto', not {self.backend!r}")
        try:
            return EngineSettings(
                precision=self.engine_precision,
                max_batch=self.engine_max_batch or len(self.camera_names),
                opt_size=image_size(self.engine_opt_size) if self.engine_opt_size else None,
                max_size=image_size(self.engine_max_size) if self.engine_max_size else None,
                cache_dir=self.engine_cache_dir or None,
                calibration_folder=self.engine_calibration_folder or None,
                workspace_gib=self.engine_workspace_gib)
        except ConfigError as exc:
            raise ConfigError(f"parameter {exc}") from None

    def value(self, name: str) -> Any:
        """The value of parameter ``name`` (ROS spelling, ROS types: lists, not tuples)."""
        value = getattr(self, BY_NAME[name].field)
        return list(value) if isinstance(value, tuple) else value

    @property
    def camera_names(self) -> list[str]:
        """Cameras as used for topic prefixes: ``[""]`` for the single un-prefixed camera."""
        return list(self.cameras) or [""]


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
    """None when ``value`` is valid for parameter ``name``, else a message naming both."""
    spec = BY_NAME[name]
    expected_type = type(spec.default)
    if expected_type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, expected_type) or (expected_type is int and isinstance(value, bool)):
        return f"parameter {name}: invalid value {value!r}; expected a {spec.type_name}"
    expected = spec.validate(value)
    return None if expected is None else (
        f"parameter {name}: invalid value {value!r}; expected {expected}")


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

