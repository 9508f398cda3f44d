"""Training and validation datasets for a recipe (Cityscapes folder or rendered synthetic)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

from filelock import FileLock

from dudes_ros.config import ConfigError
from dudes_ros.data.cityscapes import CityscapesDataset
from dudes_ros.train.config import DataConfig, SyntheticDataConfig

VAL_SEED_OFFSET = 1_000_000
"""Synthetic val scenes use ``seed + VAL_SEED_OFFSET`` so they never repeat a train scene."""
STAMP = "dudes_synthetic.json"


def data_root(config: DataConfig, out_dir: Path) -> Path:
    """The Cityscapes-layout folder a recipe reads (see ``DataConfig.root``)."""
    if config.root:
        return Path(config.root).expanduser()
    if config.source == "synthetic":
        return out_dir / "synthetic-data"
    env = os.environ.get("CITYSCAPES_DATASET")
    if not env:
        raise ConfigError("data.root: not set and CITYSCAPES_DATASET is not set; point one of "
                          "them at a folder with leftImg8bit/ and gtFine/")
    return Path(env).expanduser()


def ensure_synthetic(root: Path, config: SyntheticDataConfig, train_split: str,
                     val_split: str) -> bool:
    """Render the synthetic scenes into ``root`` once; later calls (and concurrent member
    processes, via a file lock) reuse them. A folder rendered with other settings is refused
    rather than silently mixed. A folder that exists without the stamp (written by ``dudes
    make-synthetic``, say) is read as it is. Returns whether ``root`` holds the recipe's
    rendering (so ``config`` describes it)."""
    from dudes_ros.data.synthetic import write_cityscapes_layout

    wanted = {**asdict(config), "size": list(config.size), "train_split": train_split,
              "val_split": val_split, "val_seed_offset": VAL_SEED_OFFSET}
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        stamp = root / STAMP
        if stamp.is_file():
            found = json.loads(stamp.read_text())
            if found != wanted:
                changed = ", ".join(f"{k} {found.get(k)!r} instead of {wanted[k]!r}"
                                    for k in sorted(wanted) if found.get(k) != wanted[k])
                raise ConfigError(
                    f"{root} holds synthetic scenes rendered with other settings ({changed}; "
                    f"see {stamp}); delete the folder or set data.root (--data-root)")
            return True
        if root.exists():
            return False
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
        try:
            size = tuple(config.size)
            write_cityscapes_layout(tmp, train_split, config.train_count, config.seed, size,
                                    anomaly_fraction=config.anomaly_fraction,
                                    anomaly_kind=config.anomaly_kind)
            write_cityscapes_layout(tmp, val_split, config.val_count,
                                    config.seed + VAL_SEED_OFFSET, size,
                                    anomaly_fraction=config.anomaly_fraction,
                                    anomaly_kind=config.anomaly_kind)
            (tmp / STAMP).write_text(json.dumps(wanted, indent=2))
            os.replace(tmp, root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return True


def build_datasets(config: DataConfig, out_dir: Path) -> tuple[CityscapesDataset,
                                                                CityscapesDataset, dict]:
    """``(train set, val set, description for checkpoint metadata)``."""
    root = data_root(config, out_dir)
    rendered = config.source == "synthetic" and ensure_synthetic(
        root, config.synthetic, config.train_split, config.val_split)
    train = CityscapesDataset(root, config.train_split)
    val = CityscapesDataset(root, config.val_split)
    meta = {"source": config.source, "root": str(root), "train_split": config.train_split,
            "val_split": config.val_split, "train_images": len(train), "val_images": len(val)}
    if rendered:
        meta["synthetic"] = {**asdict(config.synthetic), "size": list(config.synthetic.size)}
    return train, val, meta
