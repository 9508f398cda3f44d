"""Build a strongly typed TensorRT engine from a deploy-graph ONNX variant (the ``Builder`` of the
engine cache), on TensorRT 10 or 11.

The network is created with ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``: every layer runs
in the type its ONNX tensors have, so the precision is the variant's (fp32, fp16 or int8 Q/DQ,
``runtime.precision``) and no FP16/INT8 builder flag or calibrator is set; TensorRT 11 has
neither, and TensorRT 10 refuses them on a strongly typed network. Build progress is reported
through TensorRT's ``IProgressMonitor``.
"""

from __future__ import annotations

from pathlib import Path

from dudes_ros.runtime.engine_cache import EngineBuildError, EngineKey, Progress


def _make_progress_monitor(trt, progress: Progress):
    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            progress(phase_name, 0, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            progress(phase_name, step + 1, 0)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            progress(phase_name, -1, 0)

    return Monitor()


def build_serialized_engine(onnx_path: Path, key: EngineKey, progress: Progress, *,
                            workspace_gib: float = 4.0, gpu: int = 0) -> bytes:
    """Parse ``onnx_path`` (the variant of ``key.precision``) and build an engine for ``key``'s
    profile on GPU ``gpu`` (made current in the calling thread: the build may run in any)."""
    import tensorrt as trt

    from dudes_ros.runtime.cuda import set_device

    set_device(gpu)
    logger = trt.Logger(trt.Logger.WARNING)  # referenced as long as the builder: it keeps a
    builder = trt.Builder(logger)  # pointer only
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    profile = builder.create_optimization_profile()
    profile.set_shape("image", key.profile["min"], key.profile["opt"], key.profile["max"])
    config.add_optimization_profile(profile)
    monitor = _make_progress_monitor(trt, progress)  # referenced until the build returns
    config.progress_monitor = monitor
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path} "
                               f"({key.precision}); see the TensorRT log above")
    return bytes(serialized)
