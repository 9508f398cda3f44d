"""The TensorRT and cuda-python stand-ins refuse what the real libraries refuse, per TensorRT
version (tests/standins/README.md lists each rule; one test here holds each)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from tests.helpers import standins

REPO = Path(__file__).resolve().parent.parent
V10, V11 = standins.VERSIONS
PROFILE = ([1, 16, 16, 3], [1, 64, 64, 3], [2, 128, 128, 3])


def deploy_like(*, float_type: int = TensorProto.FLOAT, qdq: bool = False,
                intermediate_uint8: bool = False, extra_op: tuple[str, str] | None = None,
                ) -> bytes:
    """A tiny graph with the deploy graph's interface: ``image`` uint8 [B, H, W, 3] ->
    ``labels`` uint8 [B, H, W] (channel mean) and ``uncertainty`` float32 [B, H, W]
    (sigmoid of it). ``float_type`` is the compute type (fp32 or fp16); ``qdq`` puts an int8
    QuantizeLinear/DequantizeLinear pair on the way; ``intermediate_uint8`` casts to uint8 and
    back inside; ``extra_op`` (op_type, domain) adds a float-to-float node of that operator."""
    nodes = [helper.make_node("Cast", ["image"], ["x"], to=float_type)]
    inits = []
    current = "x"
    if intermediate_uint8:
        nodes += [helper.make_node("Cast", [current], ["u8"], to=TensorProto.UINT8),
                  helper.make_node("Cast", ["u8"], ["x2"], to=float_type)]
        current = "x2"
    if qdq:
        inits += [helper.make_tensor("scale", float_type, [], [0.5]),
                  helper.make_tensor("zero", TensorProto.INT8, [], [0])]
        nodes += [helper.make_node("QuantizeLinear", [current, "scale", "zero"], ["q"]),
                  helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["dq"])]
        current = "dq"
    if extra_op:
        nodes.append(helper.make_node(extra_op[0], [current], ["extra"], domain=extra_op[1]))
        current = "extra"
    nodes += [helper.make_node("ReduceMean", [current], ["mean"], axes=[3], keepdims=0),
              helper.make_node("Cast", ["mean"], ["labels"], to=TensorProto.UINT8),
              helper.make_node("Sigmoid", ["mean"], ["s"]),
              helper.make_node("Cast", ["s"], ["uncertainty"], to=TensorProto.FLOAT)]
    dims = ["batch", "height", "width"]
    graph = helper.make_graph(
        nodes, "deploy_like",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [*dims, 3])],
        [helper.make_tensor_value_info("labels", TensorProto.UINT8, dims),
         helper.make_tensor_value_info("uncertainty", TensorProto.FLOAT, dims)], inits)
    opsets = [helper.make_opsetid("", 17)]
    if extra_op and extra_op[1]:
        opsets.append(helper.make_opsetid(extra_op[1], 1))
    return helper.make_model(graph, opset_imports=opsets, ir_version=8).SerializeToString()


@pytest.fixture
def trt(trt_standin):
    return trt_standin


@pytest.fixture
def rt(trt):
    from cuda.bindings import runtime

    return runtime


def network_for(trt, onnx_bytes: bytes, *, strongly_typed: bool = True):
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    return builder, network, parser, parser.parse(onnx_bytes)


def build(trt, onnx_bytes: bytes = b"", *, strongly_typed: bool = True, flags=(),
          profile=PROFILE, calibrator=None):
    """The serialised engine (or None), as the package builds it."""
    builder, network, parser, parsed = network_for(trt, onnx_bytes or deploy_like(),
                                                   strongly_typed=strongly_typed)
    assert parsed, [str(parser.get_error(i)) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    shapes = builder.create_optimization_profile()
    shapes.set_shape("image", *profile)
    config.add_optimization_profile(shapes)
    for flag in flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if calibrator is not None:
        config.int8_calibrator = calibrator
    return builder.build_serialized_network(network, config)


def header(trt, plan) -> dict:
    data = bytes(plan)[len(trt._standin.MAGIC):]
    return json.loads(data.split(b"\n", 1)[0])


def engine_of(trt, **kwargs):
    plan = build(trt, **kwargs)
    return trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(bytes(plan))


class Bound:
    """An execution context of ``engine`` for ``shape`` [B, H, W, 3], with every I/O tensor
    bound to device buffers of the calling thread's current device, as the backend does."""

    def __init__(self, trt, rt, engine, shape, strategy=None, *, user_memory=True) -> None:
        self.rt = rt
        strategy = strategy or trt.ExecutionContextAllocationStrategy.USER_MANAGED
        self.context = engine.create_execution_context(strategy)
        assert self.context is not None, trt._standin.log[-1:]
        assert self.context.set_input_shape("image", shape)
        self.stream = rt.cudaStreamCreate()[1]
        self.buffers = {}
        pixels = int(np.prod(shape[:3]))
        for name, nbytes in (("image", pixels * 3), ("labels", pixels),
                             ("uncertainty", pixels * 4)):
            self.buffers[name] = rt.cudaMalloc(nbytes)[1]
            assert self.context.set_tensor_address(name, self.buffers[name])
        if user_memory and strategy == trt.ExecutionContextAllocationStrategy.USER_MANAGED:
            size = self.context.update_device_memory_size_for_shapes()
            self.scratch = rt.cudaMalloc(size)[1]
            self.context.set_device_memory(self.scratch, size)

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        rt = self.rt
        rt.cudaMemcpyAsync(self.buffers["image"], images.ctypes.data, images.nbytes,
                           rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream)
        if not self.context.execute_async_v3(int(self.stream)):
            return None
        labels = np.empty(images.shape[:3], np.uint8)
        u = np.empty(images.shape[:3], np.float32)
        for host, name in ((labels, "labels"), (u, "uncertainty")):
            rt.cudaMemcpyAsync(host.ctypes.data, self.buffers[name], host.nbytes,
                               rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream)
        return labels, u


def images(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# --- the API of each version ------------------------------------------------------------------


def test_version_is_chosen_by_the_environment(trt, trt_version):
    assert trt.__version__ == trt_version
    with pytest.raises(ValueError, match=r"'12.0': expected one of"):
        standins.standin_env({}, "12.0")


def test_names_a_version_lacks_raise_attribute_error(trt, trt_version):
    """11 removed the precision flags, implicit calibration and EXPLICIT_BATCH; 10.13 still has
    them (deprecated)."""
    config = trt.Builder(trt.Logger()).create_builder_config()
    removed = [lambda: trt.BuilderFlag.FP16, lambda: trt.BuilderFlag.INT8,
               lambda: trt.IInt8EntropyCalibrator2, lambda: config.set_calibration_profile,
               lambda: trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH]
    for get in removed:
        if trt_version == V11:
            with pytest.raises(AttributeError):
                get()
        else:
            assert get() is not None
    if trt_version == V11:
        with pytest.raises(AttributeError, match="has no attribute 'int8_calibrator'"):
            config.int8_calibrator = None
    with pytest.raises(AttributeError, match="real module has no such name either"):
        trt.NoSuchThing  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute 'workspace_size'"):
        config.workspace_size = 1 << 30  # removed in TensorRT 10


def test_enum_values_follow_the_version(trt, trt_version):
    """STRONGLY_TYPED is bit 1 in 10.13 and bit 0 in 11.4: a hard-coded ``create_network(2)``
    means something else on 11."""
    flag = trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED
    assert int(flag) == {V10: 1, V11: 0}[trt_version]
    builder = trt.Builder(trt.Logger())
    assert builder.create_network(1 << int(flag)).get_flag(flag)
    assert not builder.create_network(0).get_flag(flag)
    assert builder.create_network(1 << 7) is None
    assert "unknown flag bits" in trt._standin.log[-1]
    with pytest.raises(TypeError, match="incompatible function arguments"):
        builder.create_builder_config().set_flag(0)


# --- the ONNX parser --------------------------------------------------------------------------


def test_parser_refuses_uint8_between_layers(trt):
    _, _, parser, parsed = network_for(trt, deploy_like(intermediate_uint8=True))
    assert parsed is False and parser.num_errors == 1
    error = parser.get_error(0)
    assert "does not support UINT8 types for intermediate tensors" in str(error)
    assert error.code() == trt.ErrorCode.UNSUPPORTED_NODE and error.node_operator() == "Cast"
    assert network_for(trt, deploy_like())[3]  # UINT8 at the input and an output is fine


@pytest.mark.parametrize("op", [("Compress", ""), ("Unique", ""),
                                ("FusedGelu", "com.microsoft")])
def test_parser_refuses_operators_onnx_tensorrt_cannot_import(trt, op):
    _, _, parser, parsed = network_for(trt, deploy_like(extra_op=op))
    assert parsed is False
    assert f"No importer registered for op: {op[0]}" in str(parser.get_error(0))
    assert network_for(trt, deploy_like(extra_op=("Relu", "")))[3]


def test_operator_list_is_onnx_tensorrts(trt):
    ops = trt._standin.SUPPORTED_OPS
    assert {"Conv", "Resize", "ArgMax", "QuantizeLinear", "DequantizeLinear", "Cast"} <= ops
    assert not {"Compress", "MatMulInteger", "Unique", "QLinearConv"} & ops


def test_bundled_onnx_parses(trt):
    model = REPO / "engines" / "dudes_student.onnx"
    if not model.is_file():
        pytest.skip(f"no bundled model at {model}")
    _, _, parser, parsed = network_for(trt, model.read_bytes())
    assert parsed, [str(parser.get_error(i)) for i in range(parser.num_errors)]


# --- building: precision comes from the ONNX ----------------------------------------------------


@pytest.mark.parametrize(("variant", "types", "precision"), [
    ({}, ["FLOAT", "UINT8"], "fp32"),
    ({"float_type": TensorProto.FLOAT16}, ["FLOAT", "HALF", "UINT8"], "fp16"),
    ({"qdq": True}, ["FLOAT", "INT8", "UINT8"], "int8"),
])
def test_engine_header_records_the_onnx_types(trt, variant, types, precision):
    head = header(trt, build(trt, deploy_like(**variant)))
    assert head["strongly_typed"] and head["flags"] == []
    assert head["onnx_types"] == types and head["precision"] == precision
    assert head["qdq"] == variant.get("qdq", False)


def test_every_network_is_strongly_typed_on_11(trt, trt_version):
    weak = header(trt, build(trt, strongly_typed=False))
    assert weak["strongly_typed"] is (trt_version == V11)


def test_profile_must_match_the_networks_rank_and_fixed_dimensions(trt):
    assert build(trt, profile=([1, 16, 16, 4], [1, 64, 64, 4], [2, 128, 128, 4])) is None
    assert "gives 4 for axis 3, which the network fixes at 3" in trt._standin.log[-1]
    assert build(trt, profile=([1, 16, 3], [1, 64, 3], [2, 128, 3])) is None
    assert "has rank 3; the network input has rank 4" in trt._standin.log[-1]


def test_strongly_typed_network_refuses_precision_flags(trt, trt_version):
    if trt_version == V11:
        assert not hasattr(trt.BuilderFlag, "FP16") and not hasattr(trt.BuilderFlag, "BF16")
        return
    for flag in ("FP16", "INT8", "BF16", "FP8"):
        assert build(trt, flags=[flag]) is None
        assert f"BuilderFlag ['{flag}'] is not allowed with a strongly typed network" in (
            trt._standin.log[-1])
    weak = build(trt, strongly_typed=False, flags=["FP16"])
    assert header(trt, weak)["precision"] == "fp16"


def test_implicit_int8_calibration_only_on_10_for_weakly_typed_networks(trt, rt, trt_version):
    if trt_version == V11:
        assert not hasattr(trt, "IInt8EntropyCalibrator2")
        return
    scales = []

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches = [rt.cudaMalloc(64 * 64 * 3)[1]]

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):
            return [self.batches.pop()] if self.batches else None

        def read_calibration_cache(self):
            return None

        def write_calibration_cache(self, cache) -> None:
            scales.append(bytes(cache))

    assert build(trt, calibrator=Calibrator()) is None
    assert "int8_calibrator is not supported for a strongly typed network" in (
        trt._standin.log[-1])
    plan = build(trt, strongly_typed=False, flags=["INT8"], calibrator=Calibrator())
    assert header(trt, plan)["calibration"] and len(scales) == 1


# --- deserialising --------------------------------------------------------------------------


def test_engine_of_another_version_or_gpu_is_refused(trt, rt):
    plan = bytes(build(trt))
    runtime = trt.Runtime(trt.Logger())
    rt.CAPABILITY = (9, 0)
    assert runtime.deserialize_cuda_engine(plan) is None
    assert "generated on an incompatible device" in trt._standin.log[-1]
    rt.CAPABILITY = (8, 7)
    trt.__version__ = "10.0.0.6"
    assert runtime.deserialize_cuda_engine(plan) is None
    assert "not compatible with this version of TensorRT" in trt._standin.log[-1]
    assert runtime.deserialize_cuda_engine(b"garbage") is None
    assert "Magic tag does not match" in trt._standin.log[-1]


# --- running ----------------------------------------------------------------------------------


def test_outputs_are_the_onnx_run_on_the_default_stream_too(trt, rt):
    import onnxruntime as ort

    onnx_bytes = deploy_like()
    engine = engine_of(trt)
    bound = Bound(trt, rt, engine, (2, 40, 50, 3))
    batch = images((2, 40, 50, 3))
    labels, u = bound.run(batch)
    ref = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"]).run(
        None, {"image": batch})
    np.testing.assert_array_equal(labels, ref[0])
    np.testing.assert_array_equal(u, ref[1])
    assert bound.context.execute_async_v3(0)  # the default stream, as the real one accepts


def test_profile_bindings_and_streams_are_checked(trt, rt):
    engine = engine_of(trt)
    context = engine.create_execution_context(trt.ExecutionContextAllocationStrategy.STATIC)
    assert not context.set_input_shape("image", (3, 64, 64, 3))
    assert "outside the optimisation profile" in trt._standin.log[-1]
    assert context.set_input_shape("image", (1, 64, 64, 3))
    assert not context.execute_async_v3(0)
    assert "have no address or shape" in trt._standin.log[-1]
    bound = Bound(trt, rt, engine, (1, 64, 64, 3))
    rt.cudaStreamDestroy(bound.stream)
    assert bound.run(images((1, 64, 64, 3))) is None
    assert "invalid stream" in trt._standin.log[-1]
    bound.stream = rt.cudaStreamCreate()[1]
    rt.cudaFree(bound.buffers["labels"])
    assert bound.run(images((1, 64, 64, 3))) is None
    assert "'labels': " in trt._standin.log[-1] and "not in a live device allocation" in (
        trt._standin.log[-1])


def test_buffers_smaller_than_the_shape_are_refused(trt, rt):
    bound = Bound(trt, rt, engine_of(trt), (1, 64, 64, 3))
    assert bound.context.set_input_shape("image", (2, 64, 64, 3))
    size = bound.context.update_device_memory_size_for_shapes()
    scratch = rt.cudaMalloc(size)[1]
    bound.context.set_device_memory(scratch, size)
    assert not bound.context.execute_async_v3(0)
    assert "overrun their allocation" in trt._standin.log[-1]


def test_pinned_host_memory_is_not_device_memory(trt, rt):
    bound = Bound(trt, rt, engine_of(trt), (1, 64, 64, 3))
    host = rt.cudaMallocHost(64 * 64 * 3)[1]
    assert bound.context.set_tensor_address("image", host)
    assert not bound.context.execute_async_v3(0)
    assert "page-locked host memory, not device memory" in trt._standin.log[-1]


# --- device memory per allocation strategy --------------------------------------------------


def test_static_context_reserves_the_profiles_max_and_oom_gives_none(trt, rt):
    engine = engine_of(trt)
    before = trt._standin.reserved_bytes()
    expected = trt._standin.activation_bytes(PROFILE[2])
    assert engine.device_memory_size_v2 == expected
    context = engine.create_execution_context()  # STATIC by default
    assert trt._standin.reserved_bytes() - before == expected
    del context
    assert trt._standin.reserved_bytes() == before
    rt.FREE_DEVICE_MEMORY = rt.device_bytes_in_use(0) + expected - 1
    assert engine.create_execution_context() is None
    assert "OutOfMemory" in trt._standin.log[-1]
    user = engine.create_execution_context(trt.ExecutionContextAllocationStrategy.USER_MANAGED)
    assert user is not None and trt._standin.reserved_bytes() == before


def test_user_managed_memory_must_be_sized_for_the_current_shapes(trt, rt):
    engine = engine_of(trt)
    bound = Bound(trt, rt, engine, (1, 64, 64, 3), user_memory=False)
    batch = images((1, 64, 64, 3))
    assert bound.run(batch) is None
    assert "needs set_device_memory before execution" in trt._standin.log[-1]
    context = bound.context
    small = trt._standin.activation_bytes((1, 32, 32, 3))
    scratch = rt.cudaMalloc(small)[1]
    context.update_device_memory_size_for_shapes()
    context.set_device_memory(scratch, small)
    assert bound.run(batch) is None
    assert "is less than the" in trt._standin.log[-1]
    size = context.update_device_memory_size_for_shapes()
    assert size == trt._standin.activation_bytes((1, 64, 64, 3)) < engine.device_memory_size_v2
    scratch = rt.cudaMalloc(size)[1]
    context.set_device_memory(scratch, size)
    assert bound.run(batch) is not None
    assert context.set_input_shape("image", (1, 32, 32, 3))  # smaller, but not re-sized
    assert not context.execute_async_v3(0)
    assert "input shapes changed since update_device_memory_size_for_shapes" in (
        trt._standin.log[-1])
    context.set_device_memory(scratch + size - 16, 64)
    assert "overrun their allocation" in trt._standin.log[-1]
    static = engine.create_execution_context()
    static.set_device_memory(scratch, size)
    assert "needs a context created with ExecutionContextAllocationStrategy.USER_MANAGED" in (
        trt._standin.log[-1])


def test_a_camera_smaller_than_the_profile_reserves_only_its_own_size(trt, rt):
    """A 1024x2048 camera on an engine whose profile allows 2160x3840: USER_MANAGED memory for
    the camera's shape, a fraction of what STATIC would hold."""
    engine = engine_of(trt, profile=([1, 16, 16, 3], [1, 1024, 2048, 3], [1, 2160, 3840, 3]))
    before = rt.device_bytes_in_use(0)
    shape = (1, 1024, 2048, 3)
    bound = Bound(trt, rt, engine, shape)
    io_bytes = 1024 * 2048 * (3 + 1 + 4)
    activations = rt.device_bytes_in_use(0) - before - io_bytes
    assert activations == trt._standin.activation_bytes(shape)
    assert activations < 0.3 * engine.device_memory_size_v2
    assert bound.run(images(shape)) is not None


# --- CUDA devices and threads ---------------------------------------------------------------


def test_current_device_is_per_thread(rt):
    rt.DEVICE_COUNT = 2
    assert rt.cudaSetDevice(1) == (rt.cudaError_t.cudaSuccess,)
    seen = []
    thread = threading.Thread(target=lambda: seen.append(rt.cudaGetDevice()[1]))
    thread.start()
    thread.join()
    assert seen == [0] and rt.cudaGetDevice()[1] == 1
    assert rt.cudaSetDevice(2) == (rt.cudaError_t.cudaErrorInvalidDevice,)


@pytest.mark.parametrize(("error", "text"), [
    ("cudaErrorInsufficientDriver", b"CUDA driver version is insufficient for CUDA runtime "
                                    b"version"),
    ("cudaErrorNoDevice", b"no CUDA-capable device is detected"),
])
def test_device_count_fails_as_without_driver_or_gpu(rt, error, text):
    rt.DEVICE_COUNT_ERROR = getattr(rt.cudaError_t, error)
    err, count = rt.cudaGetDeviceCount()
    assert (int(err), count) == ({"cudaErrorInsufficientDriver": 35,
                                  "cudaErrorNoDevice": 100}[error], 0)
    assert rt.cudaGetErrorString(err) == (rt.cudaError_t.cudaSuccess, text)
    assert rt.cudaSetDevice(0) == (rt.cudaError_t.cudaErrorInvalidDevice,)


def test_execution_needs_the_engines_device_in_the_calling_thread(trt, rt):
    rt.DEVICE_COUNT = 2
    rt.cudaSetDevice(1)
    engine = engine_of(trt)  # deserialised on device 1
    bound = Bound(trt, rt, engine, (1, 64, 64, 3))
    batch = images((1, 64, 64, 3))
    assert bound.run(batch) is not None
    results = []

    def worker(set_device: bool) -> None:
        if set_device:
            rt.cudaSetDevice(1)
        results.append(bound.context.execute_async_v3(int(bound.stream)))

    for set_device in (False, True):
        thread = threading.Thread(target=worker, args=(set_device,))
        thread.start()
        thread.join()
    assert results == [False, True]
    assert any("current device is 0 but this context lives on device 1" in m
               for m in trt._standin.log)
    rt.cudaSetDevice(0)
    assert engine.create_execution_context() is None
    assert "engine deserialised on device 1" in trt._standin.log[-1]
    other = rt.cudaMalloc(64 * 64 * 3)[1]  # on device 0
    rt.cudaSetDevice(1)
    bound.context.set_tensor_address("image", other)
    assert not bound.context.execute_async_v3(int(bound.stream))
    assert "lives on device 0, not device 1" in trt._standin.log[-1]
    rt.cudaSetDevice(0)
    stream0 = rt.cudaStreamCreate()[1]
    rt.cudaSetDevice(1)
    bound.context.set_tensor_address("image", bound.buffers["image"])
    assert not bound.context.execute_async_v3(int(stream0))
    assert f"stream {int(stream0)} belongs to device 0" in trt._standin.log[-1]


def test_standin_onnx_operators_file_names_its_source():
    text = (REPO / "tests" / "standins" / "tensorrt" / "onnx_operators.txt").read_text()
    assert "onnx/onnx-tensorrt docs/operators.md" in text and "10.15" in text
