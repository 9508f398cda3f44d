"""Node parameters: one row per settings field, validation naming the value, YAML defaults
equal to the fields'."""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest
import yaml

from dudes_ros.config import ConfigError
from dudes_ros.ground import FlatGround
from dudes_ros.ros.params import (
    BY_NAME,
    LEAVES,
    PARAMETERS,
    NodeConfig,
    check_change,
    declare_parameters,
    input_topic,
    read_values,
)
from tests.conftest import REPO

YAML = REPO / "config" / "dudes_node.yaml"


def _settings_fields(cls: type, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Paths of the value fields reachable from ``cls`` through fields typed with a dataclass
    (``D`` or ``D | None``), found independently of ``dudes_ros.config.keys``."""
    found = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        nested = [t for t in (tp, *typing.get_args(tp)) if dataclasses.is_dataclass(t)]
        found |= _settings_fields(nested[0], (*path, f.name)) if nested else {(*path, f.name)}
    return found


def test_every_settings_field_has_exactly_one_parameter_row():
    names = [spec.name for spec in PARAMETERS]
    assert len(names) == len(set(names))
    assert set(names) == set(LEAVES)  # a row per field, a field per row
    assert {leaf.path for leaf in LEAVES.values()} == _settings_fields(NodeConfig)
    assert all(spec.description for spec in PARAMETERS)
    config = NodeConfig.from_values({})
    assert config.intake.cameras == () and config.intake.camera_names == [""]
    assert math.isnan(config.ood.pixel_threshold) and config.autostart is True
    assert config.ground is None and config.regions_segmentation_class == -1
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.backend = "torch"


def test_new_parameters_build_the_domain_objects():
    config = NodeConfig.from_values({
        "regions.min_area": 0.01, "regions.opening": 3, "regions.segmentation_class": 200,
        "ground.height": 1.5, "ground.pitch": 0.05, "depth_topic": "depth/image_raw"})
    assert (config.regions.min_area, config.regions.opening) == (0.01, 3)
    assert config.regions_segmentation_class == 200
    assert config.ground == FlatGround(1.5, 0.05, 60.0)
    assert config.depth_topic == "depth/image_raw"
    assert NodeConfig.from_values({"ground.pitch": 0.1}).ground is None  # height 0: no ground


@pytest.mark.parametrize(("values", "message"), [
    ({"backend": "warp"}, "parameter backend: invalid value 'warp'; expected one of"),
    ({"ood.pixel_threshold": -0.5}, "parameter ood.pixel_threshold: invalid value -0.5"),
    ({"ood.frame_threshold": 1.5}, "parameter ood.frame_threshold: invalid value 1.5"),
    ({"qos.depth": 0}, "parameter qos.depth: invalid value 0; expected a number >= 1"),
    ({"qos.reliability": "sometimes"}, "parameter qos.reliability: invalid value 'sometimes'"),
    ({"cameras": ["front", "front"]}, "parameter cameras: invalid value ['front', 'front']"),
    ({"cameras": ["front/left"]}, "parameter cameras: invalid value ['front/left']"),
    ({"max_pixels": "many"}, "parameter max_pixels: invalid value 'many'; expected an "
     "integer"),
    ({"device": "gpu"}, "parameter device: invalid value 'gpu'"),
    ({"colour": True}, "unknown parameter(s) ['colour']"),
    ({"device": "cuda:x"}, "parameter device: invalid value 'cuda:x'"),
    ({"engine.precision": "int4"}, "parameter engine.precision: invalid value 'int4'"),
    ({"engine.precision": "int8"},
     "parameter engine.calibration_folder: invalid value None; expected a folder of "
     "calibration images: precision 'int8' needs one"),
    ({"engine.calibration_folder": "calib/"},
     "calibration images are only used with precision 'int8', not 'fp16'"),
    ({"engine.opt_size": "1024"}, "parameter engine.opt_size: invalid value '1024'; expected "
     "HEIGHTxWIDTH"),
    ({"engine.opt_size": "1024x2048", "engine.max_size": "720x1280"},
     "parameter engine.opt_size: invalid value (1024, 2048); expected a size within "
     "engine.max_size (720, 1280)"),
    ({"engine.max_batch": -1}, "parameter engine.max_batch: invalid value -1"),
    ({"input_timeout": -1.0}, "parameter input_timeout: invalid value -1.0; expected a number "
     ">= 0.0"),
    ({"backend": "onnxruntime", "engine.precision": "fp32"},
     "parameter engine.precision: invalid value 'fp32'; the engine.* parameters configure "
     "TensorRT and apply only with backend 'tensorrt' or 'auto', not 'onnxruntime'"),
    ({"ground.height": -1.0}, "parameter ground.height: invalid value -1.0"),
    ({"ground.height": math.nan}, "parameter ground.height: invalid value nan"),
    ({"ground.height": math.inf}, "parameter ground.height: invalid value inf"),
    ({"ground.height": 1.5, "ground.pitch": 2.0}, "parameter ground.pitch: invalid value 2.0"),
    ({"ground.height": 1.5, "ground.max_range": 0.0},
     "parameter ground.max_range: invalid value 0.0"),
    ({"regions.opening": 4}, "parameter regions.opening: invalid value 4; expected an odd"),
    ({"regions.min_area": 1.0}, "parameter regions.min_area: invalid value 1.0"),
    ({"regions.segmentation_class": 256},
     "parameter regions.segmentation_class: invalid value 256; expected -1 (off) or a class "
     "id in 0..255"),
    ({"depth_topic": "/depth"}, "parameter depth_topic: invalid value '/depth'"),
])
def test_bad_values_are_named(values, message):
    with pytest.raises(ConfigError) as info:
        NodeConfig.from_values(values)
    assert message in str(info.value)


def test_engine_settings_default_to_one_batch_slot_per_camera():
    config = NodeConfig.from_values({"cameras": ["front", "left", "right"],
                                     "engine.opt_size": "1024x2048"})
    engine = config.engine
    assert engine.max_batch == 3 and engine.opt_size == (1024, 2048)
    assert engine.profile((128, 256))["max"] == [3, 2160, 3840, 3]
    assert NodeConfig.from_values({"engine.max_batch": 2}).engine.max_batch == 2
    assert NodeConfig.from_values({}).engine.profile((128, 256))["opt"] == [1, 128, 256, 3]


def test_runtime_changes():
    assert check_change("ood.frame_threshold", 0.2, configured=True) is None
    assert check_change("ood.frame_threshold", math.nan, configured=True) is None
    assert "invalid value -1.0" in check_change("ood.frame_threshold", -1.0, configured=True)
    reason = check_change("backend", "torch", configured=True)
    assert "cannot change while the node is configured" in reason
    assert check_change("backend", "torch", configured=False) is None
    assert check_change("use_sim_time", True, configured=True) is None
    # alone, a value is judged on its own: int8 waits for its calibration folder at configure
    assert check_change("engine.precision", "int8", configured=False) is None
    assert check_change("regions.grow", 0.5, configured=True) is None
    assert "regions.grow: invalid value 0.0" in check_change("regions.grow", 0.0, True)
    assert "cannot change" in check_change("ground.height", 1.5, configured=True)


def test_yaml_defaults_equal_the_declared_defaults():
    loaded = yaml.safe_load(YAML.read_text())["/**"]["ros__parameters"]
    assert set(loaded) == set(BY_NAME) - {"cameras"}  # an empty list cannot be written there
    for name, value in loaded.items():
        default = BY_NAME[name].default
        assert (math.isnan(value) and math.isnan(default)) if isinstance(default, float) and \
            math.isnan(default) else value == default, name


def test_rcl_reads_the_yaml_into_the_declared_parameters():
    rclpy = pytest.importorskip("rclpy")
    from rclpy.context import Context

    context = Context()
    rclpy.init(args=["--ros-args", "--params-file", str(YAML), "-p", "qos.depth:=4",
                     "-p", "cameras:=[a, b]"], context=context)
    try:
        node = rclpy.create_node("dudes_node", context=context)
        declare_parameters(node)
        config = NodeConfig.from_values(read_values(node))
        assert config.intake.depth == 4 and config.intake.cameras == ("a", "b")
        assert config.intake.reliability == "best_effort"
        assert math.isnan(config.ood.frame_threshold)
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_input_topic_follows_image_transport():
    """The base topic for raw, ``<base>/compressed`` for compressed: the node applies it to its
    remapped base topic, so ``-r image:=/camera/image_raw -p transport:=compressed`` reads
    ``/camera/image_raw/compressed`` as the launch file's ``image_topic`` does."""
    assert input_topic("/camera/image_raw", "raw") == ("/camera/image_raw",
                                                       "sensor_msgs/msg/Image")
    assert input_topic("/camera/image_raw", "compressed") == (
        "/camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage")
    assert input_topic("front/image", "compressed")[0] == "front/image/compressed"
    with pytest.raises(ConfigError, match=r"transport: invalid value 'theora'; expected one of "
                       r"\['raw', 'compressed'\]"):
        input_topic("image", "theora")
    assert check_change("input_timeout", 2.0, configured=True) is None  # changeable at run time
