"""What the node loads at configure and activate: the model behind a ``PerceptionCore``, with
the OOD settings from the model's calibration and the node's parameters."""

from __future__ import annotations

from pathlib import Path

from dudes_ros.config import ConfigError
from dudes_ros.perception import OodConfig, PerceptionCore
from dudes_ros.ros.params import NodeConfig
from dudes_ros.runtime.manifest import ood_calibration


def model_path(config: NodeConfig) -> Path:
    """The ``model`` parameter's file, or the bundled student when it is empty."""
    if config.model:
        return Path(config.model)
    from dudes_ros.resources import bundled_model

    return bundled_model()


def ood_config(calibration: dict | None, config: NodeConfig) -> OodConfig:
    """The node's ``ood.*`` parameters, each NaN threshold the model's calibrated one."""
    return config.ood.calibrated_by(calibration)


def load_core(config: NodeConfig) -> tuple[PerceptionCore, dict | None]:
    """``(core, calibration)`` of the configured model and backend; raises ``ConfigError`` for
    a model file that does not exist, and whatever the backend raises."""
    from dudes_ros.inference.factory import create_predictor

    model = model_path(config)
    if not model.is_file():
        raise ConfigError(f"parameter model: invalid value {config.model!r}; expected an "
                          f"existing .onnx or .pt file ({model} does not exist)")
    calibration = ood_calibration(model)
    ood = ood_config(calibration, config)
    predictor = create_predictor(model, backend=config.backend, device=config.device,
                                 engine=config.engine)
    return PerceptionCore(predictor, ood, config.intake.camera_names,
                          output_scale=config.outputs.scale), calibration
