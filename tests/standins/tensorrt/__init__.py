"""Stand-in for TensorRT's Python API, as strict as the version it plays (tests only; see
tests/standins/README.md).

The version is ``DUDES_TRT_STANDIN_VERSION`` at import ("10.13.0.35" or "11.4.0.106", default
11.4.0.106); ``__version__`` is that version. Only names of that version's real API
(``api/<version>.txt``, read from NVIDIA's wheel) exist: any other module attribute, class
member or enum member raises AttributeError as the real module does, e.g.
``tensorrt.BuilderFlag.FP16`` or ``config.int8_calibrator = c`` on 11.4. The implementation and
the test knobs are in ``tensorrt._standin``.
"""

from . import _standin

__version__ = _standin.VERSION

_CLASSES = ("Builder", "BuilderFlag", "DataType", "ErrorCode",
            "ExecutionContextAllocationStrategy", "IBuilderConfig", "ICudaEngine",
            "IExecutionContext", "IHostMemory", "IInt8Calibrator", "IInt8EntropyCalibrator2",
            "ILogger", "INetworkDefinition", "IOptimizationProfile", "IProgressMonitor", "Logger",
            "MemoryPoolType", "NetworkDefinitionCreationFlag", "OnnxParser", "ParserError",
            "Runtime", "TensorIOMode")


def _only_this_version(qualified: str, cls: type) -> None:
    """Delete the members of ``cls`` (and of the classes nested in it) that the real class of
    this version lacks."""
    for name, value in list(vars(cls).items()):
        if name.startswith("_"):
            continue
        if f"{qualified}.{name}" not in _standin.SURFACE:
            delattr(cls, name)
        elif isinstance(value, type) and value is not cls:
            _only_this_version(f"{qualified}.{name}", value)


def _export() -> None:
    for name in _CLASSES:
        if name in _standin.SURFACE:
            cls = getattr(_standin, name)
            _only_this_version(name, cls)
            globals()[name] = cls
    if "nptype" in _standin.SURFACE:
        globals()["nptype"] = _standin.nptype
    for alias, member in _standin.ALIASES.items():
        if alias in _standin.SURFACE and hasattr(_standin.DataType, member):
            globals()[alias] = getattr(_standin.DataType, member)


_export()


def __getattr__(name: str):
    why = ("the stand-in does not implement it" if name in _standin.SURFACE
           else "the real module has no such name either")
    raise AttributeError(f"module 'tensorrt' has no attribute '{name}' (TensorRT "
                         f"{__version__} stand-in: {why})")
