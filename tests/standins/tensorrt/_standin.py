"""The TensorRT stand-in's implementation and its test knobs (see tests/standins/README.md).

Classes here hold every member that any supported version has; ``tensorrt/__init__.py``
exports, for the version it plays, only the names of that version's real API
(``api/<version>.txt``) and deletes the other members from the classes, so code that uses a
name the real version lacks fails here with AttributeError, as it would there.

A serialised engine is ``MAGIC``, one JSON line (TensorRT version, the GPU's compute
capability, network typing, builder flags, the tensor types the ONNX carries, profile,
calibration digest) and the ONNX bytes. Execution runs that ONNX with ONNX Runtime on the host
memory the cuda stand-in hands out as "device" memory.

Test knobs: ``log`` (every error the stand-in logged), ``builds`` (engines built in this
process), ``reserved_bytes()`` (device memory TensorRT holds for engines and contexts), and the
device memory model (``ACTIVATION_BYTES_PER_PIXEL``, ``FIXED_ACTIVATION_BYTES``).
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from pathlib import Path

import numpy as np

VERSIONS = ("10.13.0.35", "11.4.0.106")
DEFAULT_VERSION = "11.4.0.106"
ENV = "DUDES_TRT_STANDIN_VERSION"
VERSION = os.environ.get(ENV) or DEFAULT_VERSION
if VERSION not in VERSIONS:
    raise ImportError(f"{ENV}={VERSION!r}: the TensorRT stand-in plays one of {list(VERSIONS)}")
HERE = Path(__file__).resolve().parent
SURFACE = frozenset(line for line in (HERE / "api" / f"{VERSION}.txt").read_text().splitlines()
                    if line and not line.startswith("#"))
SUPPORTED_OPS = frozenset(
    line for line in (HERE / "onnx_operators.txt").read_text().splitlines()
    if line and not line.startswith("#"))

MAGIC = b"DUDES-TRT-STANDIN\n"
log: list[str] = []
builds = 0

# Device memory an execution context needs: a fixed part (the network runs at its fixed input
# size whatever the image size) plus, per image pixel, the full-resolution float logits
# [B, 19, H, W] that the in-graph upsampling writes before the argmax.
ACTIVATION_BYTES_PER_PIXEL = 19 * 4
FIXED_ACTIVATION_BYTES = 24 << 20

# Enum values of each version, read from NVIDIA's bindings wheels the way
# scripts/tensorrt_api_surface.py reads the names (they differ: STRONGLY_TYPED is bit 1 in 10.13
# and bit 0 in 11.4).
_COMMON = {
    "ExecutionContextAllocationStrategy": {"STATIC": 0, "ON_PROFILE_CHANGE": 1,
                                           "USER_MANAGED": 2},
    "DataType": {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4, "UINT8": 5, "FP8": 6,
                 "BF16": 7, "INT64": 8, "INT4": 9, "FP4": 10, "E8M0": 11},
    "TensorIOMode": {"NONE": 0, "INPUT": 1, "OUTPUT": 2},
    "MemoryPoolType": {"WORKSPACE": 0, "DLA_MANAGED_SRAM": 1, "DLA_LOCAL_DRAM": 2,
                       "DLA_GLOBAL_DRAM": 3, "TACTIC_DRAM": 4, "TACTIC_SHARED_MEMORY": 5},
    "ErrorCode": {"SUCCESS": 0, "INTERNAL_ERROR": 1, "MEM_ALLOC_FAILED": 2,
                  "MODEL_DESERIALIZE_FAILED": 3, "INVALID_VALUE": 4, "INVALID_GRAPH": 5,
                  "INVALID_NODE": 6, "UNSUPPORTED_GRAPH": 7, "UNSUPPORTED_NODE": 8,
                  "UNSUPPORTED_NODE_ATTR": 9, "UNSUPPORTED_NODE_INPUT": 10,
                  "UNSUPPORTED_NODE_DATATYPE": 11, "UNSUPPORTED_NODE_DYNAMIC": 12,
                  "UNSUPPORTED_NODE_SHAPE": 13, "REFIT_FAILED": 14},
    "Severity": {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3, "VERBOSE": 4},
}
ENUM_VALUES = {
    "10.13.0.35": {**_COMMON, "BuilderFlag": {
        "FP16": 0, "INT8": 1, "DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4,
        "DISABLE_TIMING_CACHE": 5, "TF32": 6, "SPARSE_WEIGHTS": 7, "SAFETY_SCOPE": 8,
        "OBEY_PRECISION_CONSTRAINTS": 9, "PREFER_PRECISION_CONSTRAINTS": 10, "DIRECT_IO": 11,
        "REJECT_EMPTY_ALGORITHMS": 12, "VERSION_COMPATIBLE": 13, "EXCLUDE_LEAN_RUNTIME": 14,
        "FP8": 15, "ERROR_ON_TIMING_CACHE_MISS": 16, "BF16": 17, "DISABLE_COMPILATION_CACHE": 18,
        "STRIP_PLAN": 19, "WEIGHTLESS": 19, "REFIT_IDENTICAL": 20, "WEIGHT_STREAMING": 21,
        "INT4": 22, "REFIT_INDIVIDUAL": 23, "STRICT_NANS": 24, "MONITOR_MEMORY": 25, "FP4": 26,
        "EDITABLE_TIMING_CACHE": 27, "DISTRIBUTIVE_INDEPENDENCE": 28},
        "NetworkDefinitionCreationFlag": {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1,
                                          "PREFER_JIT_PYTHON_PLUGINS": 2,
                                          "PREFER_AOT_PYTHON_PLUGINS": 3}},
    "11.4.0.106": {**_COMMON, "BuilderFlag": {
        "DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "DISABLE_TIMING_CACHE": 5, "TF32": 6,
        "SPARSE_WEIGHTS": 7, "SAFETY_SCOPE": 8, "DIRECT_IO": 11, "VERSION_COMPATIBLE": 12,
        "EXCLUDE_LEAN_RUNTIME": 13, "ERROR_ON_TIMING_CACHE_MISS": 15,
        "DISABLE_COMPILATION_CACHE": 17, "STRIP_PLAN": 18, "REFIT_IDENTICAL": 19,
        "WEIGHT_STREAMING": 20, "REFIT_INDIVIDUAL": 22, "STRICT_NANS": 23, "MONITOR_MEMORY": 24,
        "EDITABLE_TIMING_CACHE": 26, "DISTRIBUTIVE_INDEPENDENCE": 27},
        "NetworkDefinitionCreationFlag": {"STRONGLY_TYPED": 0, "PREFER_JIT_PYTHON_PLUGINS": 1,
                                          "PREFER_AOT_PYTHON_PLUGINS": 2}},
}[VERSION]
# TensorRT 11 removed weak typing: every network is strongly typed, the creation flag is
# accepted and ignored (TensorRT 11.0.0 release notes).
ALWAYS_STRONGLY_TYPED = int(VERSION.split(".")[0]) >= 11
# Builder flags that choose a precision: refused for strongly typed networks.
PRECISION_FLAGS = ("FP16", "INT8", "BF16", "FP8", "INT4", "FP4")


def _error(text: str) -> None:
    log.append(text)


def _cudart():
    from cuda.bindings import runtime

    return runtime


def reserved_bytes(device: int = 0) -> int:
    """Device memory that TensorRT objects (engine weights, STATIC contexts) hold on
    ``device``."""
    rt = _cudart()
    return sum(n for d, n in rt._reserved.values() if d == device)


def activation_bytes(shape: tuple[int, ...] | list[int]) -> int:
    """Device memory a context needs for an input of ``shape`` ([B, H, W, C])."""
    return FIXED_ACTIVATION_BYTES + int(np.prod(shape[:-1])) * ACTIVATION_BYTES_PER_PIXEL


# --- enums and plain classes ----------------------------------------------------------------


class _Enum:
    """A pybind11 enum member: ``name``, ``value``, ``int()``; equal only to itself."""

    __slots__ = ("name", "value")

    def __init__(self, name: str, value: int) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "value", value)

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(f"{type(self).__name__}.{self.name} is read-only")

    def __int__(self) -> int:
        return self.value

    __index__ = __int__

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.value == self.value

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.value))

    def __repr__(self) -> str:
        return f"<{type(self).__name__}.{self.name}: {self.value}>"

    __str__ = __repr__


def _enum(name: str, members: dict[str, int]) -> type:
    cls = type(name, (_Enum,), {"__slots__": (), "__module__": "tensorrt"})
    cls.__members__ = {}
    for member, value in members.items():
        instance = cls(member, value)
        cls.__members__[member] = instance
        setattr(cls, member, instance)
    return cls


def _expect(value, cls: type, where: str):
    """pybind11 refuses an argument of the wrong type with TypeError."""
    if not isinstance(value, cls):
        raise TypeError(f"{where}(): incompatible function arguments: expected "
                        f"tensorrt.{cls.__name__}, got {value!r}")
    return value


BuilderFlag = _enum("BuilderFlag", ENUM_VALUES["BuilderFlag"])
NetworkDefinitionCreationFlag = _enum("NetworkDefinitionCreationFlag",
                                      ENUM_VALUES["NetworkDefinitionCreationFlag"])
ExecutionContextAllocationStrategy = _enum("ExecutionContextAllocationStrategy",
                                           ENUM_VALUES["ExecutionContextAllocationStrategy"])
DataType = _enum("DataType", ENUM_VALUES["DataType"])
TensorIOMode = _enum("TensorIOMode", ENUM_VALUES["TensorIOMode"])
MemoryPoolType = _enum("MemoryPoolType", ENUM_VALUES["MemoryPoolType"])
ErrorCode = _enum("ErrorCode", ENUM_VALUES["ErrorCode"])
_ITEMSIZE = {"FLOAT": 4, "HALF": 2, "INT8": 1, "INT32": 4, "BOOL": 1, "UINT8": 1, "FP8": 1,
             "BF16": 2, "INT64": 8, "INT4": 0.5, "FP4": 0.5, "E8M0": 1}
DataType.itemsize = property(lambda self: _ITEMSIZE[self.name])
# The real module's aliases of DataType members (``tensorrt.float32``...; ``bool`` too, so they
# are exported by __init__.py rather than bound here).
ALIASES = {"float32": "FLOAT", "float16": "HALF", "bfloat16": "BF16", "int8": "INT8",
           "int32": "INT32", "int64": "INT64", "uint8": "UINT8", "bool": "BOOL", "fp8": "FP8",
           "int4": "INT4", "fp4": "FP4", "e8m0": "E8M0"}
_NUMPY = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32,
          "INT64": np.int64, "BOOL": np.bool_, "UINT8": np.uint8}


def nptype(trt_type):
    """The numpy type of a DataType; TypeError for types numpy lacks (as the real one)."""
    if isinstance(trt_type, DataType) and trt_type.name in _NUMPY:
        return _NUMPY[trt_type.name]
    raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")


# ONNX TensorProto element types -> TensorRT names, and which the parser takes at all.
_ONNX_TYPES = {1: "FLOAT", 2: "UINT8", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL",
               10: "HALF", 11: "DOUBLE", 16: "BF16", 17: "FP8", 22: "INT4", 23: "FP4"}


class _Object:
    """A pybind11 object: no instance ``__dict__`` for public names, so assigning a member the
    class lacks (``config.int8_calibrator = c`` on 11.4) raises AttributeError. Python
    subclasses (a user's IProgressMonitor) may set what they like, as with pybind11."""

    def __setattr__(self, name: str, value) -> None:
        if (not name.startswith("_") and type(self).__module__ == __name__
                and not isinstance(getattr(type(self), name, None), property)):
            raise AttributeError(f"'tensorrt.{type(self).__name__}' object has no attribute "
                                 f"'{name}'")
        object.__setattr__(self, name, value)


class ILogger(_Object):
    Severity = _enum("Severity", ENUM_VALUES["Severity"])


class Logger(ILogger):
    Severity = ILogger.Severity
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (
        Severity.INTERNAL_ERROR, Severity.ERROR, Severity.WARNING, Severity.INFO,
        Severity.VERBOSE)

    def __init__(self, min_severity=None) -> None:
        self._min = Logger.WARNING if min_severity is None else _expect(
            min_severity, ILogger.Severity, "Logger.__init__")

    @property
    def min_severity(self):
        return self._min

    @min_severity.setter
    def min_severity(self, value) -> None:
        self._min = _expect(value, ILogger.Severity, "min_severity")

    def log(self, severity, msg: str) -> None:
        if int(severity) <= int(Logger.ERROR):
            _error(msg)


class IProgressMonitor:
    """Base of a user's build progress monitor (phase_start, step_complete, phase_finish)."""


class IInt8Calibrator:
    """Base of INT8 calibrators (10.13 only; gone in 11)."""


class IInt8EntropyCalibrator2(IInt8Calibrator):
    """Entropy calibrator base (10.13 only)."""


class ParserError(_Object):
    def __init__(self, code, desc: str, node: int = -1, node_name: str = "",
                 node_operator: str = "") -> None:
        self._code, self._desc = code, desc
        self._node, self._name, self._op = node, node_name, node_operator

    def code(self):
        return self._code

    def desc(self) -> str:
        return self._desc

    def node(self) -> int:
        return self._node

    def node_name(self) -> str:
        return self._name

    def node_operator(self) -> str:
        return self._op

    def __str__(self) -> str:
        where = (f"In node {self._node} with name: {self._name} and operator: {self._op} "
                 if self._node >= 0 else "")
        return f"{where}{self._code.name}: {self._desc}"


# --- parsing --------------------------------------------------------------------------------


def _check_onnx(data: bytes) -> tuple[list[ParserError], dict]:
    """onnx-tensorrt's refusals that matter here: operators it has no importer for, and UINT8
    anywhere but the network's inputs and outputs. Returns (errors, what the network holds)."""
    import onnx

    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001 - the parser reports, it does not raise
        return [ParserError(ErrorCode.MODEL_DESERIALIZE_FAILED,
                            f"Failed to parse ONNX model: {exc}")], {}
    try:  # the intermediate tensors' types
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001, S110 - a node ONNX cannot infer is judged on its own
        pass
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    types = {v.name: v.type.tensor_type.elem_type
             for v in [*graph.input, *graph.output, *graph.value_info]}
    types.update({t.name: t.data_type for t in graph.initializer})
    for node in graph.node:  # a Cast's output type is known even where inference gave up
        if node.op_type == "Cast":
            types[node.output[0]] = next(a.i for a in node.attribute if a.name == "to")
    outputs = {o.name for o in graph.output}
    errors: list[ParserError] = []
    for value in [*graph.input, *graph.output]:
        if types.get(value.name) not in _ONNX_TYPES:
            errors.append(ParserError(ErrorCode.UNSUPPORTED_GRAPH,
                                      f"Unsupported ONNX data type for tensor {value.name}: "
                                      f"{types.get(value.name)}"))
    for index, node in enumerate(graph.node):
        if node.domain not in ("", "ai.onnx") or node.op_type not in SUPPORTED_OPS:
            errors.append(ParserError(
                ErrorCode.UNSUPPORTED_NODE, f"No importer registered for op: {node.op_type} "
                f"(domain {node.domain or 'ai.onnx'!r}); plugin not found", index, node.name,
                node.op_type))
        for out in node.output:
            if types.get(out) == 2 and out not in outputs:  # 2: UINT8
                errors.append(ParserError(
                    ErrorCode.UNSUPPORTED_NODE, f"TensorRT does not support UINT8 types for "
                    f"intermediate tensors! ({out!r}; UINT8 is only supported as network input "
                    "or output tensor types)", index, node.name, node.op_type))
    present = sorted({_ONNX_TYPES.get(t, str(t)) for t in types.values() if t})
    qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node)
    dims = {i.name: [d.dim_value if d.HasField("dim_value") else None
                     for d in i.type.tensor_type.shape.dim] for i in graph.input}
    info = {"inputs": [i.name for i in graph.input if i.name not in initializers], "dims": dims,
            "outputs": [o.name for o in graph.output], "types": present, "qdq": qdq}
    return errors, info


class INetworkDefinition(_Object):
    def __init__(self, flags: int) -> None:
        self._flags = flags
        self._onnx: bytes | None = None
        self._info: dict = {}

    @property
    def num_inputs(self) -> int:
        return len(self._info.get("inputs", []))

    @property
    def num_outputs(self) -> int:
        return len(self._info.get("outputs", []))

    def get_flag(self, flag) -> bool:
        _expect(flag, NetworkDefinitionCreationFlag, "get_flag")
        return bool(self._flags & (1 << int(flag)))

    @property
    def _strongly_typed(self) -> bool:
        return ALWAYS_STRONGLY_TYPED or self.get_flag(
            NetworkDefinitionCreationFlag.STRONGLY_TYPED)


class OnnxParser(_Object):
    def __init__(self, network: INetworkDefinition, logger: ILogger) -> None:
        self._network = _expect(network, INetworkDefinition, "OnnxParser.__init__")
        self._errors: list[ParserError] = []

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> ParserError:
        return self._errors[index]

    def clear_errors(self) -> None:
        self._errors.clear()

    def parse(self, model: bytes, path: str | None = None) -> bool:
        errors, info = _check_onnx(bytes(model))
        if errors:
            self._errors.extend(errors)
            for e in errors:
                _error(f"ModelImporter: {e}")
            return False
        self._network._onnx, self._network._info = bytes(model), info
        return True

    def parse_from_file(self, model: str) -> bool:
        try:
            data = Path(model).read_bytes()
        except OSError as exc:
            self._errors.append(ParserError(ErrorCode.MODEL_DESERIALIZE_FAILED,
                                            f"Failed to open file: {model} ({exc})"))
            return False
        return self.parse(data, model)


# --- building -------------------------------------------------------------------------------


class IOptimizationProfile(_Object):
    def __init__(self) -> None:
        self._shapes: dict[str, tuple[list[int], list[int], list[int]]] = {}

    def set_shape(self, input: str, min, opt, max) -> None:  # noqa: A002 - the real names
        lo, mid, hi = (list(map(int, s)) for s in (min, opt, max))
        if not (len(lo) == len(mid) == len(hi)) or not all(
                a <= b <= c for a, b, c in zip(lo, mid, hi, strict=True)):
            raise ValueError(f"profile for {input}: need min <= opt <= max, got {lo} {mid} {hi}")
        self._shapes[input] = (lo, mid, hi)

    def get_shape(self, input: str) -> list:  # noqa: A002
        return [tuple(s) for s in self._shapes.get(input, ())]


class IBuilderConfig(_Object):
    def __init__(self) -> None:
        self._flags: set = set()
        self._profiles: list[IOptimizationProfile] = []
        self._pools: dict = {}
        self._calibrator = None
        self._calibration_profile = None
        self._monitor = None

    def set_flag(self, flag) -> None:
        self._flags.add(_expect(flag, BuilderFlag, "set_flag"))

    def clear_flag(self, flag) -> None:
        self._flags.discard(_expect(flag, BuilderFlag, "clear_flag"))

    def get_flag(self, flag) -> bool:
        return _expect(flag, BuilderFlag, "get_flag") in self._flags

    def set_memory_pool_limit(self, pool, pool_size: int) -> None:
        self._pools[_expect(pool, MemoryPoolType, "set_memory_pool_limit")] = int(pool_size)

    def get_memory_pool_limit(self, pool) -> int:
        return self._pools.get(_expect(pool, MemoryPoolType, "get_memory_pool_limit"), 0)

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        self._profiles.append(_expect(profile, IOptimizationProfile,
                                      "add_optimization_profile"))
        return len(self._profiles) - 1

    @property
    def num_optimization_profiles(self) -> int:
        return len(self._profiles)

    @property
    def progress_monitor(self):
        return self._monitor

    @progress_monitor.setter
    def progress_monitor(self, monitor) -> None:
        self._monitor = None if monitor is None else _expect(monitor, IProgressMonitor,
                                                              "progress_monitor")

    @property
    def int8_calibrator(self):
        return self._calibrator

    @int8_calibrator.setter
    def int8_calibrator(self, calibrator) -> None:
        self._calibrator = None if calibrator is None else _expect(calibrator, IInt8Calibrator,
                                                                    "int8_calibrator")

    def set_calibration_profile(self, profile: IOptimizationProfile) -> bool:
        self._calibration_profile = _expect(profile, IOptimizationProfile,
                                            "set_calibration_profile")
        return True

    def get_calibration_profile(self):
        return self._calibration_profile


class IHostMemory(_Object):
    """A serialised engine. The real one exposes the buffer protocol; a pure-Python class on
    Python 3.11 cannot, so ``bytes(host_memory)`` (``__bytes__``) is what works here."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __bytes__(self) -> bytes:
        return self._data

    @property
    def nbytes(self) -> int:
        return len(self._data)

    @property
    def dtype(self):
        return DataType.UINT8


class Builder(_Object):
    def __init__(self, logger: ILogger) -> None:
        self._logger = _expect(logger, ILogger, "Builder.__init__")

    def create_network(self, flags: int = 0) -> INetworkDefinition | None:
        members = {k: int(v) for k, v in NetworkDefinitionCreationFlag.__members__.items()}
        known = sum(1 << v for v in members.values())
        if int(flags) & ~known:
            _error(f"Error Code 3: API Usage Error (createNetworkV2: unknown flag bits "
                   f"{int(flags) & ~known:#x}; NetworkDefinitionCreationFlag has {members})")
            return None
        return INetworkDefinition(int(flags))

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def build_serialized_network(self, network: INetworkDefinition,
                                 config: IBuilderConfig) -> IHostMemory | None:
        global builds
        _expect(network, INetworkDefinition, "build_serialized_network")
        _expect(config, IBuilderConfig, "build_serialized_network")
        if network._onnx is None:
            _error("Error Code 4: API Usage Error (Network must have at least one output; "
                   "the network is empty: did parsing fail?)")
            return None
        inputs = network._info["inputs"]
        if len(config._profiles) != 1 or sorted(config._profiles[0]._shapes) != sorted(inputs):
            _error("Error Code 4: API Usage Error (need one optimisation profile covering the "
                   f"network inputs {inputs})")
            return None
        problem = _profile_problem(config._profiles[0], network._info["dims"])
        if problem:
            _error(f"Error Code 4: API Usage Error (optimisation profile: {problem})")
            return None
        flags = sorted(f.name for f in config._flags)
        precision = [f for f in flags if f in PRECISION_FLAGS]
        if network._strongly_typed and precision:
            _error(f"Error Code 4: API Usage Error (BuilderFlag {precision} is not allowed with "
                   "a strongly typed network: its precision is the ONNX's tensor types)")
            return None
        if network._strongly_typed and config._calibrator is not None:
            _error("Error Code 4: API Usage Error (int8_calibrator is not supported for a "
                   "strongly typed network: quantize with Q/DQ in the ONNX)")
            return None
        monitor = config._monitor
        if monitor is not None:
            monitor.phase_start("Building engine", None, 3)
        calibration = ""
        if "INT8" in flags:
            calibration = _calibrate(config._calibrator)
            if calibration is None:
                return None
        for step in range(3):
            if monitor is not None and not monitor.step_complete("Building engine", step):
                _error("Error Code 1: build cancelled by the progress monitor")
                return None
        if monitor is not None:
            monitor.phase_finish("Building engine")
        name = inputs[0]
        info = network._info
        header = {"version": _module_version(), "capability": _capability(),
                  "strongly_typed": network._strongly_typed, "flags": flags,
                  "onnx_types": info["types"], "qdq": info["qdq"],
                  "precision": _precision(info, flags), "input": name,
                  "profile": config._profiles[0]._shapes[name], "calibration": calibration}
        builds += 1
        return IHostMemory(MAGIC + json.dumps(header).encode() + b"\n" + network._onnx)


def _profile_problem(profile: IOptimizationProfile, dims: dict) -> str | None:
    """None when every shape of ``profile`` has its input's rank and static dimensions."""
    for name, shapes in profile._shapes.items():
        network = dims[name]
        for which, shape in zip(("min", "opt", "max"), shapes, strict=True):
            if len(shape) != len(network):
                return (f"{which} shape {shape} of {name!r} has rank {len(shape)}; the "
                        f"network input has rank {len(network)}")
            for axis, (fixed, size) in enumerate(zip(network, shape, strict=True)):
                if fixed and fixed != size:
                    return (f"{which} shape {shape} of {name!r} gives {size} for axis {axis}, "
                            f"which the network fixes at {fixed}")
    return None


def _precision(info: dict, flags: list[str]) -> str:
    """What the engine computes in: the ONNX's types (Q/DQ means int8), or for a weakly typed
    10.13 network the precision flags."""
    if info["qdq"] or "INT8" in flags:
        return "int8"
    return "fp16" if "HALF" in info["types"] or "FP16" in flags else "fp32"


def _module_version() -> str:
    """``tensorrt.__version__`` as the module has it now (tests may change it)."""
    import sys

    return sys.modules["tensorrt"].__version__


def _capability() -> str:
    rt = _cudart()
    return "{}.{}".format(*rt.CAPABILITY)


def _calibrate(calibrator) -> str | None:
    """Run the calibrator as TensorRT 10 does: the cache if it has one, else every batch, then
    write the cache. Returns a digest of the "scales"."""
    rt = _cudart()
    if calibrator is None:
        _error("Error Code 4: INT8 build without an int8_calibrator")
        return None
    cache = calibrator.read_calibration_cache()
    if cache:
        return hashlib.sha256(bytes(cache)).hexdigest()[:16]
    digest = hashlib.sha256()
    batch = calibrator.get_batch_size()
    while True:
        pointers = calibrator.get_batch(["image"])
        if pointers is None:
            break
        data = rt.view(int(pointers[0]), 1)  # the address must be a live allocation
        digest.update(bytes(data) + str(batch).encode())
    scales = digest.hexdigest().encode()
    calibrator.write_calibration_cache(memoryview(scales))
    return hashlib.sha256(scales).hexdigest()[:16]


# --- running --------------------------------------------------------------------------------

_ORT_TYPES = {"tensor(uint8)": "UINT8", "tensor(float)": "FLOAT", "tensor(int32)": "INT32",
              "tensor(int64)": "INT64", "tensor(float16)": "HALF", "tensor(int8)": "INT8",
              "tensor(bool)": "BOOL"}


class _Session:
    """The ONNX on ONNX Runtime's CPU provider."""

    def __init__(self, onnx: bytes) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        values = [*self.session.get_inputs(), *self.session.get_outputs()]
        self.types = {v.name: getattr(DataType, _ORT_TYPES[v.type]) for v in values}
        self.dims = {v.name: list(v.shape) for v in values}


def _hold(owner, nbytes: int, device: int) -> bool:
    """Reserve ``nbytes`` of ``device`` for ``owner`` until it is garbage collected."""
    rt = _cudart()
    reservation = rt.reserve(nbytes, device)
    if reservation is None:
        return False
    weakref.finalize(owner, rt.release, reservation)
    return True


class ICudaEngine(_Object):
    def __init__(self, header: dict, session: _Session, device: int) -> None:
        self._header = header
        self._session = session
        self._device = device
        self._names = [*session.inputs, *session.outputs]

    @property
    def num_io_tensors(self) -> int:
        return len(self._names)

    @property
    def num_optimization_profiles(self) -> int:
        return 1

    def get_tensor_name(self, index: int) -> str:
        return self._names[index]

    def get_tensor_mode(self, name: str):
        if name in self._session.inputs:
            return TensorIOMode.INPUT
        return TensorIOMode.OUTPUT if name in self._session.outputs else TensorIOMode.NONE

    def get_tensor_dtype(self, name: str):
        return self._session.types[name]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) else -1 for d in self._session.dims[name])

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list:
        if name != self._header["input"] or profile_index != 0:
            raise ValueError(f"no profile shape for {name!r} in profile {profile_index}")
        return [tuple(s) for s in self._header["profile"]]

    def get_device_memory_size_for_profile_v2(self, profile_index: int) -> int:
        return activation_bytes(self.get_tensor_profile_shape(self._header["input"],
                                                              profile_index)[2])

    @property
    def device_memory_size_v2(self) -> int:
        """Activation memory for the profile's max shape (what STATIC reserves)."""
        return self.get_device_memory_size_for_profile_v2(0)

    @property
    def device_memory_size(self) -> int:  # 10.13 only (deprecated there)
        return self.device_memory_size_v2

    def create_execution_context(self, strategy=None) -> IExecutionContext | None:
        strategy = ExecutionContextAllocationStrategy.STATIC if strategy is None else _expect(
            strategy, ExecutionContextAllocationStrategy, "create_execution_context")
        rt = _cudart()
        if rt.current_device() != self._device:
            _error(f"Error Code 1: Cuda Runtime (createExecutionContext on device "
                   f"{rt.current_device()} for an engine deserialised on device "
                   f"{self._device})")
            return None
        context = IExecutionContext(self, strategy)
        if strategy != ExecutionContextAllocationStrategy.USER_MANAGED:
            size = self.device_memory_size_v2
            if not _hold(context, size, self._device):
                _error(f"Error Code 2: OutOfMemory (Requested size was {size} bytes.) "
                       "createExecutionContext: out of device memory")
                return None
            context._static_bytes = size
        return context

    def create_execution_context_without_device_memory(self) -> IExecutionContext | None:
        return self.create_execution_context(ExecutionContextAllocationStrategy.USER_MANAGED)


class IExecutionContext(_Object):
    def __init__(self, engine: ICudaEngine, strategy) -> None:
        self._engine = engine
        self._strategy = strategy
        self._device = engine._device
        self._static_bytes = 0
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._addresses: dict[str, int] = {}
        self._memory: tuple[int, int] | None = None  # USER_MANAGED (address, size)
        self._sized_for: dict | None = None  # input shapes at the last size update

    @property
    def engine(self) -> ICudaEngine:
        return self._engine

    def set_input_shape(self, name: str, shape) -> bool:
        header = self._engine._header
        lo, _, hi = header["profile"]
        shape = tuple(int(s) for s in shape)
        if name != header["input"] or len(shape) != len(lo) or not all(
                a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)):
            _error(f"Error Code 3: API Usage Error (IExecutionContext::setInputShape: {name} "
                   f"shape {list(shape)} is outside the optimisation profile [{lo}, {hi}])")
            return False
        self._shapes[name] = shape
        return True

    def _symbols(self) -> dict:
        values = {}
        for name, shape in self._shapes.items():
            for dim, size in zip(self._engine._session.dims[name], shape, strict=True):
                values[dim if isinstance(dim, str) else id(dim)] = size
        return values

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if name in self._shapes:
            return self._shapes[name]
        symbols = self._symbols() if self._shapes else {}
        return tuple(d if isinstance(d, int) else symbols.get(d, -1)
                     for d in self._engine._session.dims[name])

    def set_tensor_address(self, name: str, memory: int) -> bool:
        if name not in self._engine._names:
            _error(f"Error Code 3: API Usage Error (setTensorAddress: no tensor named {name!r})")
            return False
        self._addresses[name] = int(memory)
        return True

    def get_tensor_address(self, name: str) -> int:
        return self._addresses.get(name, 0)

    def update_device_memory_size_for_shapes(self) -> int:
        """Activation memory for the current input shapes (0 and an error until every input
        shape is set)."""
        name = self._engine._header["input"]
        if name not in self._shapes:
            _error("Error Code 3: API Usage Error (updateDeviceMemorySizeForShapes: input "
                   f"shape of {name!r} not specified)")
            return 0
        self._sized_for = dict(self._shapes)
        return activation_bytes(self._shapes[name])

    def set_device_memory(self, memory: int, size: int) -> None:
        rt = _cudart()
        if self._strategy != ExecutionContextAllocationStrategy.USER_MANAGED:
            _error("Error Code 3: API Usage Error (setDeviceMemory needs a context created with "
                   f"ExecutionContextAllocationStrategy.USER_MANAGED, not {self._strategy.name})")
            return
        problem = rt.device_span_problem(int(memory), int(size), self._device)
        if problem:
            _error(f"Error Code 3: API Usage Error (setDeviceMemory: {problem})")
            return
        self._memory = (int(memory), int(size))

    def _tensor_bytes(self, name: str) -> int:
        shape = self.get_tensor_shape(name)
        dtype = np.dtype(nptype(self._engine._session.types[name]))
        return int(np.prod(shape)) * dtype.itemsize

    def _refusal(self, stream_handle: int) -> str | None:
        rt = _cudart()
        here = rt.current_device()
        if here != self._device:
            return (f"the calling thread's current device is {here} but this context lives on "
                    f"device {self._device} (call cudaSetDevice({self._device}) in this thread)")
        stream_device = rt.stream_device(int(stream_handle))
        if stream_device is None:
            return f"invalid stream {int(stream_handle)}"
        if stream_device != self._device:
            return f"stream {int(stream_handle)} belongs to device {stream_device}"
        unbound = [n for n in self._engine._names if n not in self._addresses]
        name = self._engine._header["input"]
        if unbound or name not in self._shapes:
            return f"tensors {unbound or [name]} have no address or shape"
        if self._strategy == ExecutionContextAllocationStrategy.USER_MANAGED:
            needed = activation_bytes(self._shapes[name])
            if self._memory is None:
                return ("no device memory: a USER_MANAGED context needs set_device_memory "
                        "before execution")
            if self._sized_for != self._shapes:
                return ("input shapes changed since update_device_memory_size_for_shapes(); "
                        "call it (then set_device_memory) after set_input_shape")
            if self._memory[1] < needed:
                return (f"device memory of {self._memory[1]} bytes is less than the "
                        f"{needed} these shapes need")
            problem = rt.device_span_problem(*self._memory, self._device)
            if problem:
                return f"context device memory: {problem}"
        for tensor in self._engine._names:
            problem = rt.device_span_problem(self._addresses[tensor],
                                             self._tensor_bytes(tensor), self._device)
            if problem:
                return f"tensor {tensor!r}: {problem}"
        return None

    def execute_async_v3(self, stream_handle: int) -> bool:
        rt = _cudart()
        refusal = self._refusal(stream_handle)
        if refusal:
            _error(f"Error Code 1: enqueueV3: {refusal}")
            return False
        session = self._engine._session
        feeds = {}
        for name in session.inputs:
            dtype = np.dtype(nptype(session.types[name]))
            raw = rt.view(self._addresses[name], self._tensor_bytes(name))
            feeds[name] = raw.view(dtype).reshape(self._shapes[name])
        outputs = session.session.run(session.outputs, feeds)
        for name, value in zip(session.outputs, outputs, strict=True):
            value = np.ascontiguousarray(value, dtype=nptype(session.types[name]))
            if value.nbytes != self._tensor_bytes(name):
                _error(f"Error Code 1: enqueueV3: output {name!r} has shape {value.shape}, "
                       f"not {self.get_tensor_shape(name)}")
                return False
            rt.view(self._addresses[name], value.nbytes)[...] = value.view(np.uint8).reshape(-1)
        return True


class Runtime(_Object):
    def __init__(self, logger: ILogger) -> None:
        self._logger = _expect(logger, ILogger, "Runtime.__init__")

    def deserialize_cuda_engine(self, serialized_engine) -> ICudaEngine | None:
        rt = _cudart()
        data = bytes(serialized_engine)
        if not data.startswith(MAGIC):
            _error("Error Code 1: Serialization (Serialization assertion "
                   "magicTagRead == kMAGIC_TAG failed.Magic tag does not match)")
            return None
        line, _, onnx = data[len(MAGIC):].partition(b"\n")
        try:
            header = json.loads(line)
        except ValueError:
            _error("Error Code 1: Serialization (corrupt engine header)")
            return None
        if header.get("version") != _module_version():
            _error("Error Code 6: API Usage Error (The engine plan file is not compatible with "
                   f"this version of TensorRT, expecting library version {_module_version()} "
                   f"got {header.get('version')}, please rebuild.)")
            return None
        if header.get("capability") != _capability():
            _error("Error Code 6: API Usage Error (The engine plan file is generated on an "
                   f"incompatible device, expecting compute {_capability()} got compute "
                   f"{header.get('capability')}, please rebuild.)")
            return None
        try:
            session = _Session(onnx)
        except Exception as exc:  # noqa: BLE001 - a corrupt plan is a null engine
            _error(f"Error Code 1: Serialization (corrupt engine: {exc})")
            return None
        engine = ICudaEngine(header, session, rt.current_device())
        if not _hold(engine, len(onnx), engine._device):
            _error(f"Error Code 2: OutOfMemory (engine weights: {len(onnx)} bytes)")
            return None
        return engine
