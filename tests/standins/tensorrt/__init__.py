"""Stand-in for the TensorRT 10 Python API (tests only; see tests/standins/README.md).

A serialised engine is ``MAGIC``, one JSON line (TensorRT version, precision, profile, INT8
calibration digest) and the ONNX bytes. Execution runs that ONNX with ONNX Runtime on the host
memory that the cuda stand-in hands out as "device" memory.
"""

from __future__ import annotations

import enum
import hashlib
import json
from pathlib import Path

import numpy as np

__version__ = "10.99.0-standin"
MAGIC = b"DUDES-TRT-STANDIN\n"
log: list[str] = []  # every error the stand-in "logged", for tests to read
builds = 0  # engines built in this process


class Logger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self, min_severity: int = 2) -> None:
        self.min_severity = min_severity


def _error(text: str) -> None:
    log.append(text)


class DataType(enum.Enum):
    FLOAT = np.float32
    HALF = np.float16
    INT8 = np.int8
    INT32 = np.int32
    INT64 = np.int64
    BOOL = np.bool_
    UINT8 = np.uint8


_ORT_TYPES = {"tensor(uint8)": DataType.UINT8, "tensor(float)": DataType.FLOAT,
              "tensor(int32)": DataType.INT32, "tensor(int64)": DataType.INT64,
              "tensor(float16)": DataType.HALF}


def nptype(dtype: DataType) -> type:
    return dtype.value


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class MemoryPoolType(enum.Enum):
    WORKSPACE = 0


class BuilderFlag(enum.Enum):
    FP16 = 0
    INT8 = 2


class IInt8EntropyCalibrator2:
    def __init__(self) -> None:
        pass


class IProgressMonitor:
    def __init__(self) -> None:
        pass


class _Session:
    """The ONNX on ONNX Runtime's CPU provider."""

    def __init__(self, onnx: bytes) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.types = {t.name: _ORT_TYPES[t.type] for t in
                      [*self.session.get_inputs(), *self.session.get_outputs()]}
        self.outputs = [o.name for o in self.session.get_outputs()]


# --- building ------------------------------------------------------------------------------


class INetworkDefinition:
    def __init__(self) -> None:
        self.onnx: bytes | None = None
        self.inputs: list[str] = []


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: Logger) -> None:
        self.network = network
        self.errors: list[str] = []

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, index: int) -> str:
        return self.errors[index]

    def parse_from_file(self, path: str) -> bool:
        try:
            data = Path(path).read_bytes()
            session = _Session(data)
        except Exception as exc:  # noqa: BLE001 - the parser reports, it does not raise
            self.errors.append(f"cannot parse {path}: {exc}")
            return False
        self.network.onnx = data
        self.network.inputs = session.inputs
        return True


class IOptimizationProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[list[int], list[int], list[int]]] = {}

    def set_shape(self, name: str, min: list[int], opt: list[int], max: list[int]) -> None:  # noqa: A002
        lo, mid, hi = (list(map(int, s)) for s in (min, opt, max))
        if not (len(lo) == len(mid) == len(hi)) or not all(
                a <= b <= c for a, b, c in zip(lo, mid, hi, strict=True)):
            raise ValueError(f"profile for {name}: need min <= opt <= max, got {lo} {mid} {hi}")
        self.shapes[name] = (lo, mid, hi)


class IBuilderConfig:
    def __init__(self) -> None:
        self.flags: set[BuilderFlag] = set()
        self.profiles: list[IOptimizationProfile] = []
        self.pool_limits: dict[MemoryPoolType, int] = {}
        self.int8_calibrator = None
        self.calibration_profile = None
        self.progress_monitor = None

    def set_memory_pool_limit(self, pool: MemoryPoolType, size: int) -> None:
        self.pool_limits[pool] = int(size)

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def set_flag(self, flag: BuilderFlag) -> None:
        self.flags.add(flag)

    def set_calibration_profile(self, profile: IOptimizationProfile) -> bool:
        self.calibration_profile = profile
        return True


class IHostMemory(bytes):
    """Serialised engine (TensorRT's supports the buffer protocol; bytes does)."""


class Builder:
    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        return INetworkDefinition()

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def build_serialized_network(self, network: INetworkDefinition,
                                 config: IBuilderConfig) -> IHostMemory | None:
        global builds
        if network.onnx is None:
            _error("build_serialized_network: the network is empty (parse failed?)")
            return None
        if len(config.profiles) != 1 or sorted(config.profiles[0].shapes) != network.inputs:
            _error("build_serialized_network: need one optimisation profile covering the "
                   f"inputs {network.inputs}")
            return None
        monitor = config.progress_monitor
        if monitor is not None:
            monitor.phase_start("Building engine", None, 3)
        calibration = ""
        if BuilderFlag.INT8 in config.flags:
            calibration = _calibrate(config.int8_calibrator)
            if calibration is None:
                return None
        for step in range(3):
            if monitor is not None and not monitor.step_complete("Building engine", step):
                _error("build cancelled by the progress monitor")
                return None
        if monitor is not None:
            monitor.phase_finish("Building engine")
        name = network.inputs[0]
        header = {"version": __version__, "profile": config.profiles[0].shapes[name],
                  "input": name, "fp16": BuilderFlag.FP16 in config.flags,
                  "int8": calibration}
        builds += 1
        return IHostMemory(MAGIC + json.dumps(header).encode() + b"\n" + network.onnx)


def _calibrate(calibrator: IInt8EntropyCalibrator2 | None) -> str | None:
    """Run the calibrator as TensorRT does: the cache if it has one, else every batch, then
    write the cache. Returns a digest of the "scales"."""
    from cuda.bindings import runtime

    if calibrator is None:
        _error("INT8 build without an int8_calibrator")
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
        data = runtime.view(int(pointers[0]), 1)  # address must be a live allocation
        digest.update(bytes(data) + str(batch).encode())
    scales = digest.hexdigest().encode()
    calibrator.write_calibration_cache(memoryview(scales))
    return hashlib.sha256(scales).hexdigest()[:16]


# --- running -------------------------------------------------------------------------------


class ICudaEngine:
    def __init__(self, header: dict, onnx: bytes) -> None:
        self.header = header
        self.session = _Session(onnx)
        self.names = [*self.session.inputs, *self.session.outputs]

    @property
    def num_io_tensors(self) -> int:
        return len(self.names)

    def get_tensor_name(self, index: int) -> str:
        return self.names[index]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        if name in self.session.inputs:
            return TensorIOMode.INPUT
        return TensorIOMode.OUTPUT if name in self.session.outputs else TensorIOMode.NONE

    def get_tensor_dtype(self, name: str) -> DataType:
        return self.session.types[name]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list:
        if name != self.header["input"] or profile_index != 0:
            raise ValueError(f"no profile shape for {name!r} in profile {profile_index}")
        return self.header["profile"]

    def create_execution_context(self) -> IExecutionContext:
        return IExecutionContext(self)


class IExecutionContext:
    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        lo, _, hi = self.engine.header["profile"]
        shape = tuple(int(s) for s in shape)
        if name != self.engine.header["input"] or len(shape) != len(lo) or not all(
                a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)):
            _error(f"IExecutionContext::setInputShape: {name} shape {list(shape)} is outside "
                   f"the optimisation profile [{lo}, {hi}]")
            return False
        self.shapes[name] = shape
        return True

    def set_tensor_address(self, name: str, address: int) -> bool:
        if name not in self.engine.names:
            _error(f"setTensorAddress: no tensor named {name!r}")
            return False
        self.addresses[name] = int(address)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        shape = self.shapes.get(self.engine.header["input"])
        if shape is None:
            return (-1,)
        return shape if name == self.engine.header["input"] else shape[:3]

    def execute_async_v3(self, stream_handle: int) -> bool:
        from cuda.bindings import runtime

        session = self.engine.session
        unbound = [n for n in self.engine.names if n not in self.addresses]
        name = self.engine.header["input"]
        if unbound or name not in self.shapes:
            _error(f"enqueueV3: tensors {unbound or [name]} have no address or shape")
            return False
        if not runtime.stream_is_live(int(stream_handle)):
            _error(f"enqueueV3: invalid stream {stream_handle}")
            return False
        shape = self.shapes[name]
        dtype = np.dtype(nptype(session.types[name]))
        count = int(np.prod(shape))
        image = runtime.view(self.addresses[name], count * dtype.itemsize).view(dtype)
        outputs = session.session.run(session.outputs, {name: image.reshape(shape)})
        for out_name, value in zip(session.outputs, outputs, strict=True):
            value = np.ascontiguousarray(value, dtype=nptype(session.types[out_name]))
            runtime.view(self.addresses[out_name], value.nbytes)[...] = value.view(np.uint8) \
                .reshape(-1)
        return True


class Runtime:
    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    def deserialize_cuda_engine(self, data: bytes) -> ICudaEngine | None:
        data = bytes(data)
        if not data.startswith(MAGIC):
            _error("Serialization assertion magicTagRead == kMAGIC_TAG failed")
            return None
        line, _, onnx = data[len(MAGIC):].partition(b"\n")
        try:
            header = json.loads(line)
        except ValueError:
            _error("Serialization: corrupt engine header")
            return None
        if header.get("version") != __version__:
            _error(f"The engine plan file is not compatible with this version of TensorRT, "
                   f"expecting library version {__version__} got {header.get('version')}")
            return None
        try:
            return ICudaEngine(header, onnx)
        except Exception as exc:  # noqa: BLE001 - a corrupt plan is a null engine
            _error(f"Serialization: corrupt engine ({exc})")
            return None
