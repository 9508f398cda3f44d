"""Training settings: a recipe = model + data + teacher schedule + student schedule.

Recipes are YAML files (``config/recipes/<name>.yaml``) loaded with ``dudes_ros.config``'s
strict loader: unknown keys and bad values are errors naming the dotted key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dudes_ros.config import check
from dudes_ros.data.anomalies import ANOMALY_KINDS
from dudes_ros.model.config import ModelConfig
from dudes_ros.uncertainty import STD_CORRECTION, STD_CORRECTIONS


@dataclass(frozen=True)
class SyntheticDataConfig:
    """How many synthetic street scenes to render (Cityscapes layout) and at what size."""

    train_count: int = 300
    val_count: int = 60
    size: tuple[int, int] = (128, 256)
    seed: int = 1234
    anomaly_fraction: float = 0.0
    anomaly_kind: str = "any"

    def __post_init__(self) -> None:
        check(self.train_count > 0, "data.synthetic.train_count", self.train_count, "> 0")
        check(self.val_count > 0, "data.synthetic.val_count", self.val_count, "> 0")
        check(min(self.size) > 0, "data.synthetic.size", self.size, "positive (height, width)")
        check(0.0 <= self.anomaly_fraction <= 1.0, "data.synthetic.anomaly_fraction",
              self.anomaly_fraction, "a fraction in [0, 1]")
        check(self.anomaly_kind in ANOMALY_KINDS, "data.synthetic.anomaly_kind",
              self.anomaly_kind, f"one of {ANOMALY_KINDS}")


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how training crops are made.

    ``root``: a Cityscapes-layout folder. For ``source: cityscapes`` it defaults to the
    ``CITYSCAPES_DATASET`` environment variable; for ``source: synthetic`` the scenes of
    ``synthetic`` are rendered there once (default ``<output dir>/synthetic-data``) and
    reused, and a folder that already exists without dudes' rendering stamp (one written by
    ``dudes make-synthetic``, say) is read as it is.
    ``crop_size`` is (height, width); both must be multiples of the model's output stride.
    """

    source: Literal["cityscapes", "synthetic"] = "cityscapes"
    root: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    crop_size: tuple[int, int] = (768, 768)
    scale_range: tuple[float, float] = (0.5, 2.0)
    hflip: bool = True
    num_workers: int = 4
    val_batch_size: int = 1
    synthetic: SyntheticDataConfig = field(default_factory=SyntheticDataConfig)

    def __post_init__(self) -> None:
        check(min(self.crop_size) > 0, "data.crop_size", self.crop_size,
              "positive (height, width)")
        lo, hi = self.scale_range
        check(0 < lo <= hi, "data.scale_range", self.scale_range, "0 < min <= max")
        check(self.num_workers >= 0, "data.num_workers", self.num_workers, ">= 0")
        check(self.val_batch_size > 0, "data.val_batch_size", self.val_batch_size, "> 0")


@dataclass(frozen=True)
class TrainConfig:
    """One training schedule (teacher member or student): SGD + poly LR per iteration.

    ``lr`` is the encoder's learning rate; the decoder and heads get ``lr * head_lr_factor``.
    ``max_steps`` caps the iterations (the poly schedule then ends there).
    ``checkpoint_every`` also saves the resume checkpoint every that many steps (0: only at
    the end of each epoch). ``uncertainty_weight`` (λ), ``validate_teacher`` (also score
    the ensemble and the u_S / u_T correlation at validation) and ``init_from_member`` (start
    from that teacher member's weights, the uncertainty head fresh; null: from
    ``model.encoder_weights``) apply to the student only, as does ``uncertainty_prior``: the
    fresh uncertainty head starts out predicting about this u everywhere
    (``SegmentationNet.start_uncertainty_at``; null: PyTorch's default init, u ≈ 0.5), and
    ``target_std_correction``: the correction of the std over members in u_T, 1 (Bessel's,
    divide by M - 1, as the reference's ``torch.std``) or 0 (divide by M; every u_T
    sqrt((M - 1) / M) as large, e.g. to reproduce a student distilled that way).
    ``pretrained_encoder``: start the encoder from ``model.encoder_weights`` (false: random
    init, as the paper's ensemble members; the student ignores it with ``init_from_member``).
    """

    epochs: int = 200
    batch_size: int = 16
    lr: float = 0.1
    head_lr_factor: float = 10.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    amp: bool = True
    max_steps: int | None = None
    checkpoint_every: int = 0
    val_every: int = 1
    uncertainty_weight: float = 1.0
    validate_teacher: bool = True
    init_from_member: int | None = None
    uncertainty_prior: float | None = None
    outlier_classes: tuple[int, ...] = ()
    outlier_weight: float = 1.0
    target_std_correction: int = STD_CORRECTION
    pretrained_encoder: bool = True

    def __post_init__(self) -> None:
        check(self.epochs > 0, "epochs", self.epochs, "> 0")
        check(self.batch_size > 0, "batch_size", self.batch_size, "> 0")
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(self.head_lr_factor > 0, "head_lr_factor", self.head_lr_factor, "> 0")
        check(0 <= self.momentum < 1, "momentum", self.momentum, "in [0, 1)")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        check(self.poly_power >= 0, "poly_power", self.poly_power, ">= 0")
        check(self.max_steps is None or self.max_steps > 0, "max_steps", self.max_steps,
              "null or > 0")
        check(self.checkpoint_every >= 0, "checkpoint_every", self.checkpoint_every, ">= 0")
        check(self.val_every > 0, "val_every", self.val_every, "> 0")
        check(self.uncertainty_weight >= 0, "uncertainty_weight", self.uncertainty_weight,
              ">= 0")
        check(self.init_from_member is None or self.init_from_member >= 0, "init_from_member",
              self.init_from_member, "null or a member index >= 0")
        check(self.uncertainty_prior is None or 0 < self.uncertainty_prior < 1,
              "uncertainty_prior", self.uncertainty_prior, "null or in (0, 1)")
        check(len(set(self.outlier_classes)) == len(self.outlier_classes), "outlier_classes",
              self.outlier_classes, "distinct trainIds")
        check(self.outlier_weight > 0, "outlier_weight", self.outlier_weight, "> 0")
        check(self.target_std_correction in STD_CORRECTIONS, "target_std_correction",
              self.target_std_correction, f"one of {list(STD_CORRECTIONS)}")


@dataclass(frozen=True)
class Recipe:
    """A full DUDES training recipe. ``model`` describes the student; teacher members are the
    same network without the uncertainty head. Member ``i`` trains with seed ``seed + i``."""

    name: str
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TrainConfig = field(default_factory=TrainConfig)
    student: TrainConfig = field(default_factory=lambda: TrainConfig(lr=0.01))
    members: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.members >= 2, "members", self.members,
              ">= 2 (u_T is the std over members of p(predicted class))")
        stride = self.model.output_stride
        check(all(s % stride == 0 for s in self.data.crop_size), "data.crop_size",
              self.data.crop_size, f"multiples of model.output_stride={stride}")
        classes = self.model.num_classes
        check(all(0 <= c < classes for c in self.teacher.outlier_classes),
              "teacher.outlier_classes", self.teacher.outlier_classes,
              f"trainIds in 0..{classes - 1}")
        check(self.teacher.uncertainty_prior is None, "teacher.uncertainty_prior",
              self.teacher.uncertainty_prior, "null (members have no uncertainty head)")
        check(not self.student.outlier_classes, "student.outlier_classes",
              self.student.outlier_classes, "empty (the student learns u_T, not outlier labels)")
