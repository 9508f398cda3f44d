"""Config loading: strict keys, typed values, errors that name the key and the bad value."""

from dataclasses import dataclass, field

import pytest

from dudes_ros.config import (
    FLATTEN,
    ConfigError,
    check,
    key,
    keys,
    load_config,
    to_dict,
)
from dudes_ros.model.config import ModelConfig


@dataclass(frozen=True)
class Inner:
    rate: float = 1.0
    mode: str = "a"

    def __post_init__(self):
        check(self.rate > 0, "inner.rate", self.rate, "> 0")


@dataclass(frozen=True)
class Outer:
    name: str
    sizes: tuple[int, int] = (1, 2)
    inner: Inner = field(default_factory=Inner)
    optional: int | None = None


def test_defaults_and_nested_values():
    cfg = load_config(Outer, {"name": "x", "inner": {"rate": 2}, "sizes": [3, 4]})
    assert cfg == Outer(name="x", sizes=(3, 4), inner=Inner(rate=2.0))
    assert to_dict(cfg) == {"name": "x", "sizes": [3, 4], "inner": {"rate": 2.0, "mode": "a"},
                            "optional": None}


def test_unknown_key_is_an_error_naming_it():
    with pytest.raises(ConfigError, match=r"inner: unknown key\(s\) \['rat'\]"):
        load_config(Outer, {"name": "x", "inner": {"rat": 2}})


def test_wrong_type_names_key_and_value():
    with pytest.raises(ConfigError, match=r"sizes\[1\]: invalid value 'big'"):
        load_config(Outer, {"name": "x", "sizes": [1, "big"]})
    with pytest.raises(ConfigError, match="name: required setting is missing"):
        load_config(Outer, {})


def test_range_validation_names_key_and_value():
    with pytest.raises(ConfigError, match=r"inner.rate: invalid value -1.0; expected > 0"):
        load_config(Outer, {"name": "x", "inner": {"rate": -1}})


def test_yaml_file(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text("encoder: resnet34\ninput_size: [256, 512]\n")
    cfg = load_config(ModelConfig, path)
    assert cfg.encoder == "resnet34" and cfg.input_size == (256, 512)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(ModelConfig, tmp_path / "missing.yaml")
    path.write_text("input_size: [100, 512]\n")
    with pytest.raises(ConfigError, match=r"model.input_size: invalid value \(100, 512\)"):
        load_config(ModelConfig, path)
    path.write_text("output_stride: 32\n")
    with pytest.raises(ConfigError, match="output_stride: invalid value 32; expected one of"):
        load_config(ModelConfig, path)


@dataclass(frozen=True)
class Qos:
    depth: int = field(default=1, metadata=key("qos.depth"))

    def __post_init__(self):
        check(self.depth >= 1, "qos.depth", self.depth, ">= 1")


@dataclass(frozen=True)
class Node:
    qos: Qos = field(default_factory=Qos, metadata=FLATTEN)
    inner: Inner = Inner(rate=3.0)  # the parent's default for a nested object
    optional: Inner | None = None


def test_dotted_keys_build_nested_objects():
    assert list(keys(Node)) == ["qos.depth", "inner.rate", "inner.mode", "optional.rate",
                                "optional.mode"]
    assert keys(Node)["inner.rate"].default == 3.0
    cfg = load_config(Node, {"qos.depth": 4, "inner.mode": "b"})
    assert cfg == Node(Qos(4), Inner(rate=3.0, mode="b"), None)
    assert load_config(Node, {"optional.rate": 2}).optional == Inner(rate=2.0)
    with pytest.raises(ConfigError, match=r"qos.depth: invalid value 0; expected >= 1"):
        load_config(Node, {"qos.depth": 0})
    with pytest.raises(ConfigError, match=r"qos.depth: invalid value 'x'; expected an integer"):
        load_config(Node, {"qos.depth": "x"})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['depth'\]"):
        load_config(Node, {"depth": 4})
