"""Configuration: one frozen dataclass per concern, loaded from YAML with strict validation.

``load_config(cls, source)`` builds a dataclass from a mapping or YAML file. Unknown keys are
errors; every type mismatch names the dotted key, the bad value and what was expected.
Dataclasses may validate ranges in ``__post_init__`` by raising ``ConfigError`` through
``check``. Nested dataclasses, ``tuple[...]``, ``Literal[...]`` and ``X | None`` are supported.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from dudes_ros.errors import DudesError

ConfigT = TypeVar("ConfigT")


class ConfigError(DudesError, ValueError):
    """A configuration value is missing, unknown or invalid; the message names the key."""


def check(condition: bool, key: str, value: Any, expected: str) -> None:
    """Raise ``ConfigError`` naming ``key`` and ``value`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"{key}: invalid value {value!r}; expected {expected}")


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{key}: invalid value {value!r}; expected {tp}")
    if origin is Literal:
        check(value in args, key, value, f"one of {list(args)}")
        return value
    if origin is tuple:
        check(isinstance(value, (list, tuple)), key, value, f"a list for {tp}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        check(len(value) == len(args), key, value, f"a list of {len(args)} items")
        pairs = enumerate(zip(args, value, strict=True))
        return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in pairs)
    if origin is dict:
        check(isinstance(value, dict), key, value, "a mapping")
        return {str(k): _coerce(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return _from_mapping(tp, value, key)
    if tp is bool:
        check(isinstance(value, bool), key, value, "true or false")
        return value
    if tp is int:
        check(isinstance(value, int) and not isinstance(value, bool), key, value, "an integer")
        return value
    if tp is float:
        check(isinstance(value, (int, float)) and not isinstance(value, bool), key, value,
              "a number")
        return float(value)
    if tp is str:
        check(isinstance(value, str), key, value, "a string")
        return value
    raise TypeError(f"{key}: unsupported config field type {tp}")


def _from_mapping(cls: type[ConfigT], data: Any, where: str) -> ConfigT:
    where_ = where or cls.__name__
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where_}: expected a mapping of settings, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where_}: unknown key(s) {unknown}; valid keys are {sorted(fields)}")
    kwargs = {}
    for name, field in fields.items():
        key = f"{where}.{name}" if where else name
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], key)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key}: required setting is missing")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        # A dataclass's own checks name its fields; put them under where it was nested.
        if not where or str(exc).startswith(f"{where}."):
            raise
        raise ConfigError(f"{where}.{exc}") from exc


def load_config(cls: type[ConfigT], source: dict | str | Path | None = None,
                where: str = "") -> ConfigT:
    """Build ``cls`` from a mapping, a YAML file path, or defaults when ``source`` is None."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            source = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        try:
            return _from_mapping(cls, source, where)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    return _from_mapping(cls, source, where)


def to_dict(obj: Any) -> dict:
    """A config dataclass as plain JSON/YAML-ready data (tuples become lists)."""
    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(obj))


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The network: DeepLabV3+ (segmentation-models-pytorch) with an optional uncertainty head.

    ``input_size`` is (height, width) of the deploy graph's input; both must be multiples of
    ``output_stride`` so the decoder's ×4 upsampling lands exactly on the input size.
    """

    arch: Literal["deeplabv3plus"] = "deeplabv3plus"
    encoder: str = "resnet18"
    encoder_weights: str | None = None
    output_stride: Literal[8, 16] = 16
    atrous_rates: tuple[int, int, int] = (12, 24, 36)
    decoder_channels: int = 256
    num_classes: int = 19
    uncertainty_head: bool = True
    input_size: tuple[int, int] = (512, 1024)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        check(self.decoder_channels > 0, "model.decoder_channels", self.decoder_channels, "> 0")
        check(self.num_classes > 1, "model.num_classes", self.num_classes, "> 1")
        h, w = self.input_size
        check(h > 0 and w > 0 and h % self.output_stride == 0 and w % self.output_stride == 0,
              "model.input_size", self.input_size,
              f"positive multiples of output_stride={self.output_stride}")
        check(all(s > 0 for s in self.std), "model.std", self.std, "positive values")
