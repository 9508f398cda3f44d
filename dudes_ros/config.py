"""Configuration: one frozen dataclass per concern, loaded from YAML with strict validation.

``load_config(cls, source)`` builds a dataclass from a mapping or YAML file. Unknown keys are
errors; every type mismatch names the dotted key, the bad value and what was expected.
Dataclasses may validate ranges in ``__post_init__`` by raising ``ConfigError`` through
``check``. Nested dataclasses, ``tuple[...]``, ``Literal[...]`` and ``X | None`` are supported.

A flat mapping of dotted keys (``{"engine.precision": "fp16"}``, as ROS names parameters) builds
the nested dataclasses too: each leaf field has one key, its path of field names joined by
dots (``keys``). A field's metadata may rename its part of the path (``key("qos.depth")``) or
leave it out (``FLATTEN``: the nested dataclass's keys sit at its parent's level), so a nested
object can group settings whose keys are flat.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

import yaml

from dudes_ros.errors import DudesError

ConfigT = TypeVar("ConfigT")


class ConfigError(DudesError, ValueError):
    """A configuration value is missing, unknown or invalid; the message names the key."""


def check(condition: bool, key: str, value: Any, expected: str) -> None:
    """Raise ``ConfigError`` naming ``key`` and ``value`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"{key}: invalid value {value!r}; expected {expected}")


FLATTEN = {"flatten": True}
"""Field metadata: the nested dataclass's keys sit at its parent's level (no ``name.`` part)."""


def key(name: str) -> dict[str, str]:
    """Field metadata: the field's key is ``name`` (may hold dots) instead of its own name."""
    return {"key": name}


class Leaf(NamedTuple):
    """One settable value of a dataclass tree: the field ``path`` from the root, its type and
    its default (``dataclasses.MISSING`` when required)."""

    path: tuple[str, ...]
    type: Any
    default: Any


def optional_of(tp: Any) -> Any:
    """``X`` of a type ``X | None``, else None."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else None
    return None


def _group(tp: Any) -> type | None:
    """The dataclass of a field typed ``D`` or ``D | None``, else None."""
    for candidate in (tp, optional_of(tp)):
        if dataclasses.is_dataclass(candidate):
            return candidate
    return None


def _default_of(field: dataclasses.Field, base: Any) -> Any:
    """``field``'s default: its value in ``base`` (the parent's default object of the field's
    class) where there is one, else the field's own (``dataclasses.MISSING`` if required)."""
    if base is not dataclasses.MISSING and base is not None:
        return getattr(base, field.name)
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def keys(cls: type, prefix: str = "", base: Any = dataclasses.MISSING) -> dict[str, Leaf]:
    """``{dotted key: Leaf}`` of every leaf field under ``cls``, in declaration order. Defaults
    come from ``base`` (the parent's default object of this class) where there is one, so a
    parent may choose other defaults for a nested object than the class's own."""
    hints = typing.get_type_hints(cls)
    leaves: dict[str, Leaf] = {}
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        default = _default_of(field, base)
        name = prefix + field.metadata.get("key", field.name)
        group = _group(hints[field.name])
        if group is None:
            leaves[name] = Leaf((field.name,), hints[field.name], default)
            continue
        inner = prefix if field.metadata.get("flatten") else f"{name}."
        for sub, leaf in keys(group, inner, default).items():
            leaves[sub] = leaf._replace(path=(field.name, *leaf.path))
    return leaves


def _from_keys(cls: type[ConfigT], data: Mapping[str, Any], where: str) -> ConfigT:
    """``cls`` from ``{dotted key: value}`` (see ``keys``); a nested object of which no key is
    given keeps its default, one of which some are given starts from that default."""
    leaves = keys(cls)
    unknown = sorted(set(data) - set(leaves))
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown key(s) {unknown}; valid keys are "
                          f"{list(leaves)}")
    return _build(cls, data, "", dataclasses.MISSING)


def _build(cls: type[ConfigT], data: Mapping[str, Any], prefix: str, base: Any) -> ConfigT:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        name = prefix + field.metadata.get("key", field.name)
        group = _group(hints[field.name])
        if group is not None:
            inner = prefix if field.metadata.get("flatten") else f"{name}."
            if any(k in data for k in keys(group, inner)):
                kwargs[field.name] = _build(group, data, inner, _default_of(field, base))
        elif name in data:
            kwargs[field.name] = _coerce(hints[field.name], data[name], name)
        elif base is dataclasses.MISSING or base is None:
            if field.default is dataclasses.MISSING and \
                    field.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{name}: required setting is missing")
    if base is dataclasses.MISSING or base is None:
        return cls(**kwargs)
    return dataclasses.replace(base, **kwargs)


def _dotted(cls: type, data: Any) -> bool:
    """Whether ``data`` for ``cls`` is a flat mapping of dotted keys (see ``keys``)."""
    if not isinstance(data, dict):
        return False
    if any("." in str(k) for k in data):
        return True
    return any(f.metadata for f in dataclasses.fields(cls))


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
    if not where and _dotted(cls, data):
        return _from_keys(cls, data, where)
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
