"""The training loop shared by teacher members and the student.

SGD (momentum, weight decay) with the encoder at ``lr`` and decoder + heads at
``lr * head_lr_factor``; poly learning rate ``(1 - step / total) ** power`` stepped every
iteration; fp16 autocast + GradScaler on CUDA only. Loss: cross-entropy (ignore 255) for a
member; for the student also ``λ · RMSLE(u_S, u_T)`` over all pixels, where u_T is computed
by the frozen ensemble on the same augmented crop.

Checkpoints (rank 0 only): ``last.pt`` at the end of every epoch and every
``checkpoint_every`` steps, with optimizer / scheduler / GradScaler / RNG states and the
position inside the epoch; ``best.pt`` (weights and metadata only) whenever validation mIoU
improves. A run restarted in
the same folder resumes from ``last.pt`` and continues exactly as if never stopped (bitwise
on CPU): augmentation is seeded per (seed, epoch, sample), the epoch's shuffle by
(seed, epoch), and the loader's worker seeds by an explicit per-epoch generator.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

from dudes_ros.config import ConfigError, to_dict
from dudes_ros.data.transforms import AugmentedDataset, EvalView, RandomScaleCropFlip
from dudes_ros.evaluate.metrics import ConfusionMatrix, RunningCorrelation
from dudes_ros.labels import IGNORE_INDEX
from dudes_ros.model.checkpoint import (
    CheckpointError,
    model_config_of,
    read_checkpoint,
    require_same_architecture,
    save_checkpoint,
)
from dudes_ros.model.ensemble import Ensemble
from dudes_ros.model.student import SegmentationNet, normalize
from dudes_ros.train.config import DataConfig, TrainConfig
from dudes_ros.train.distributed import DistContext
from dudes_ros.train.reproducibility import rng_state, set_rng_state
from dudes_ros.uncertainty import rmsle

StepCallback = Callable[[int, float], None]
"""Called after every optimizer step with (global step, loss); used for tests and demos."""


@dataclass
class TrainResult:
    best: Path
    last: Path
    steps: int
    history: list[dict] = field(default_factory=list)


@dataclass
class _Counters:
    epoch: int = 0
    epoch_step: int = 0
    step: int = 0
    best_miou: float = -math.inf
    history: list[dict] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)  # this epoch's so far


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad ``[B, C, H, W]`` at the bottom/right so H and W are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % multiple, 0, -h % multiple))


def distillation_loss(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor,
                      teacher: Ensemble | None, weight: float,
                      class_weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """CE(logits, labels; ignore 255) [+ weight · RMSLE(u_S, u_T) with a teacher].

    ``x``: normalised ``[B, 3, H, W]``; ``labels``: int64 ``[B, H, W]``; ``class_weights``:
    optional CE weight per class ``[C]`` (the weighted mean over labelled pixels).
    """
    logits, u = model(x)
    ce = F.cross_entropy(logits.float(), labels, weight=class_weights,
                         ignore_index=IGNORE_INDEX)
    if teacher is None:
        return ce, {"ce": ce.detach()}
    if u is None:
        raise ValueError("student training needs a model with an uncertainty head")
    with torch.no_grad():
        target = teacher.statistics(x).target_std
    unc = rmsle(u[:, 0].float(), target.float())
    return ce + weight * unc, {"ce": ce.detach(), "rmsle": unc.detach()}


@torch.no_grad()
def validation_metrics(net: SegmentationNet, loader: DataLoader, ctx: DistContext,
                       teacher: Ensemble | None = None) -> dict:
    """Full-resolution validation: mIoU (and with a teacher: its mIoU and the pixel-wise
    Pearson correlation of u_S and u_T over all pixels), summed over processes."""
    was_training = net.training
    net.eval()
    config = net.config
    conf = ConfusionMatrix(config.num_classes, device=ctx.device)
    teacher_conf = ConfusionMatrix(config.num_classes, device=ctx.device)
    # one shift on every process, so that their sums add up; 0 suits uncertainties in [0, 1]
    pearson = RunningCorrelation(shift=(0.0, 0.0), device=ctx.device)
    for batch in loader:
        labels = batch["labels"].to(ctx.device).long()
        h, w = labels.shape[-2:]
        x = pad_to_multiple(normalize(batch["image"].to(ctx.device), config),
                            config.output_stride)
        logits, u = net(x)
        conf.update(logits[..., :h, :w].argmax(dim=1), labels)
        if teacher is not None:
            stats = teacher.statistics(x)
            teacher_conf.update(stats.prediction[..., :h, :w], labels)
            if u is not None:
                pearson.update(u[:, 0, :h, :w], stats.target_std[..., :h, :w])
    for metric in (conf, teacher_conf, pearson):
        metric.load_state(ctx.all_reduce_sum(metric.state()))
    net.train(was_training)
    seg = conf.compute()
    # Classes absent from ground truth and prediction have no IoU: None (JSON-friendly).
    metrics = {"val_miou": seg["miou"],
               "val_iou": [None if math.isnan(v) else float(v) for v in seg["iou"]]}
    if teacher is not None:
        metrics["teacher_val_miou"] = teacher_conf.compute()["miou"]
        if config.uncertainty_head:
            metrics["u_pearson"] = pearson.compute()["pearson_r"]
    return metrics


def sync_batchnorm(ctx: DistContext) -> bool:
    """Whether BatchNorm statistics are synchronised over processes (SyncBatchNorm: several
    CUDA processes; gloo on CPUs has no SyncBatchNorm, each process normalises its own)."""
    return ctx.distributed and ctx.device.type == "cuda"


def check_batch_size(batch_size: int, processes: int, *, synced_batchnorm: bool) -> int:
    """The per-process batch of a global ``batch_size`` split over ``processes``.

    Refuses, in one line naming the batch, the processes and the minimum, a batch that does
    not split evenly, and one that leaves a BatchNorm layer a single value per channel (the
    ASPP's image-pooling branch normalises ``[B, C, 1, 1]``), which would otherwise fail
    inside the first forward pass with a long traceback from every process: at least 2 images
    per process, or 1 where BatchNorm is synchronised over 2 or more processes.
    """
    if batch_size % processes:
        raise ConfigError(f"batch size {batch_size} (--batch-size) must be divisible by the "
                          f"number of processes ({processes})")
    local = batch_size // processes
    if synced_batchnorm and processes >= 2:
        return local  # statistics over all processes: at least 2 images
    if local < 2:
        where = " (CPU processes do not synchronise it)" if processes > 1 else ""
        raise ConfigError(f"batch size {batch_size} (--batch-size) over {processes} "
                          f"process(es) is {local} image per process; BatchNorm needs at least "
                          f"2 images per process{where}: use --batch-size {2 * processes} or "
                          "more")
    return local


class Trainer:
    """One training run of ``net`` into ``out_dir`` (``last.pt``, ``best.pt``)."""

    def __init__(self, *, role: str, net: SegmentationNet, train_config: TrainConfig,
                 data_config: DataConfig, train_set: Dataset, val_set: Dataset, seed: int,
                 out_dir: Path, metadata: dict, ctx: DistContext,
                 teacher: Ensemble | None = None, outlier_class: int | None = None) -> None:
        self.role, self.cfg, self.data_cfg = role, train_config, data_config
        self.seed, self.out_dir, self.metadata, self.ctx = seed, Path(out_dir), metadata, ctx
        self.teacher = teacher
        world = ctx.world_size
        self.local_batch = check_batch_size(train_config.batch_size, world,
                                            synced_batchnorm=sync_batchnorm(ctx))
        self.net = net.to(ctx.device)
        self.model: torch.nn.Module = self.net
        if ctx.distributed:
            if sync_batchnorm(ctx):
                self.net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.net)
            self.model = DistributedDataParallel(
                self.net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
        augment = RandomScaleCropFlip(data_config.crop_size, data_config.scale_range,
                                      data_config.hflip)
        self.train_view = AugmentedDataset(train_set, augment, seed, outlier_class)
        self.class_weights = None
        if outlier_class is not None:
            self.class_weights = torch.ones(net.config.num_classes, device=ctx.device)
            self.class_weights[outlier_class] = train_config.outlier_weight
        self.steps_per_epoch = len(train_set) // world // self.local_batch
        if self.steps_per_epoch == 0:
            raise ConfigError(f"{len(train_set)} training images are fewer than one batch of "
                              f"{train_config.batch_size}; lower the batch size "
                              "(--batch-size) or add images")
        total = train_config.epochs * self.steps_per_epoch
        self.total_steps = min(total, train_config.max_steps or total)
        self.epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        val_shard = Subset(EvalView(val_set), range(ctx.rank, len(val_set), world))
        self.val_loader = DataLoader(val_shard, batch_size=data_config.val_batch_size,
                                     num_workers=data_config.num_workers,
                                     pin_memory=ctx.device.type == "cuda")
        self.amp = train_config.amp and ctx.device.type == "cuda"
        if ctx.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop size: pick the fastest kernels
        self.optimizer = torch.optim.SGD(
            self.net.parameter_groups(train_config.lr, train_config.head_lr_factor),
            lr=train_config.lr, momentum=train_config.momentum,
            weight_decay=train_config.weight_decay)
        total_steps, power = self.total_steps, train_config.poly_power
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: (1.0 - min(s, total_steps) / total_steps) ** power)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.state = _Counters()
        self.last_path = self.out_dir / "last.pt"
        self.best_path = self.out_dir / "best.pt"

    # -- checkpoints -------------------------------------------------------------------------

    def _metadata(self) -> dict:
        latest = self.state.history[-1] if self.state.history else {}
        return {**self.metadata, "role": self.role, "seed": self.seed,
                "train_config": to_dict(self.cfg), "data_config": to_dict(self.data_cfg),
                "epoch": self.state.epoch, "step": self.state.step,
                "total_steps": self.total_steps, "best_val_miou": self.state.best_miou,
                "metrics": latest, "history": self.state.history}

    def _save(self, path: Path, resumable: bool = True) -> None:
        """Write a checkpoint; ``resumable`` adds the optimizer, scheduler, GradScaler and RNG
        states that ``resume`` needs (as large as the weights again)."""
        if not self.ctx.is_main:
            return
        training_state = None if not resumable else {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "epoch": self.state.epoch, "epoch_step": self.state.epoch_step,
            "step": self.state.step, "best_miou": self.state.best_miou,
            "history": self.state.history, "epoch_losses": self.state.epoch_losses,
            "total_steps": self.total_steps,
            "seed": self.seed,
        }
        save_checkpoint(path, self.net, role=self.role, metadata=self._metadata(),
                        training_state=training_state)

    def resume(self) -> bool:
        """Continue from ``last.pt`` if it exists; returns whether it did."""
        if not self.last_path.is_file():
            return False
        ckpt = read_checkpoint(self.last_path, map_location=self.ctx.device)
        require_same_architecture(model_config_of(ckpt, self.last_path), self.net.config,
                                  f"resume checkpoint {self.last_path}",
                                  against="this run's recipe (restart with --restart or use "
                                  "another --out)")
        ts = ckpt.get("training_state")
        if ckpt["role"] != self.role or ts is None:
            raise CheckpointError(f"{self.last_path} is not a resumable {self.role} checkpoint")
        if (ts["total_steps"], ts["seed"]) != (self.total_steps, self.seed):
            raise CheckpointError(
                f"{self.last_path} belongs to a run with {ts['total_steps']} steps and seed "
                f"{ts['seed']}, this one has {self.total_steps} steps and seed {self.seed}; "
                "restart it (--restart) or use another output folder")
        self.net.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ts["optimizer"])
        self.scheduler.load_state_dict(ts["scheduler"])
        self.scaler.load_state_dict(ts["scaler"])
        set_rng_state(ts["rng"])
        self.state = _Counters(ts["epoch"], ts["epoch_step"], ts["step"], ts["best_miou"],
                               list(ts["history"]), list(ts["epoch_losses"]))
        return True

    # -- training ----------------------------------------------------------------------------

    def _epoch_loader(self, epoch: int) -> DataLoader:
        self.train_view.set_epoch(epoch)
        sampler = DistributedSampler(self.train_view, num_replicas=self.ctx.world_size,
                                     rank=self.ctx.rank, shuffle=True, seed=self.seed,
                                     drop_last=True)
        sampler.set_epoch(epoch)
        per_epoch = self.steps_per_epoch * self.local_batch
        indices = list(sampler)[self.state.epoch_step * self.local_batch:per_epoch]
        return DataLoader(self.train_view, batch_size=self.local_batch, sampler=indices,
                          num_workers=self.data_cfg.num_workers, drop_last=True,
                          pin_memory=self.ctx.device.type == "cuda",
                          generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))

    def _step(self, batch: dict) -> float:
        images = batch["image"].to(self.ctx.device, non_blocking=True)
        labels = batch["labels"].to(self.ctx.device, non_blocking=True).long()
        x = normalize(images, self.net.config)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
            loss, _ = distillation_loss(self.model, x, labels, self.teacher,
                                        self.cfg.uncertainty_weight, self.class_weights)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return float(loss.detach())

    def _end_epoch(self, epoch: int) -> None:
        st = self.state
        losses, st.epoch_losses = st.epoch_losses, []
        st.epoch, st.epoch_step = epoch + 1, 0
        record = {"epoch": epoch + 1, "step": st.step,
                  "train_loss": sum(losses) / len(losses) if losses else math.nan}
        last_epoch = st.step >= self.total_steps
        if (epoch + 1) % self.cfg.val_every == 0 or last_epoch:
            teacher = self.teacher if self.cfg.validate_teacher else None
            record.update(validation_metrics(self.net, self.val_loader, self.ctx, teacher))
        st.history.append(record)
        improved = record.get("val_miou", -math.inf) > st.best_miou
        if improved:
            st.best_miou = record["val_miou"]
        self._save(self.last_path)
        if improved or not self.best_path.is_file():
            self._save(self.best_path, resumable=False)
        if self.ctx.is_main:
            shown = {k: round(v, 4) for k, v in record.items()
                     if isinstance(v, float) and k != "train_loss"}
            tqdm.write(f"{self.role} epoch {epoch + 1}/{self.epochs}: "
                       f"train loss {record['train_loss']:.4f} {shown}")

    def fit(self, on_step: StepCallback | None = None) -> TrainResult:
        st, cfg = self.state, self.cfg
        self.model.train()
        progress = tqdm(total=self.total_steps, initial=st.step, unit="it",
                        desc=f"train {self.role}", disable=not self.ctx.is_main,
                        dynamic_ncols=True)
        images_per_step = self.local_batch * self.ctx.world_size
        try:
            for epoch in range(st.epoch, self.epochs):
                tick = time.perf_counter()
                for batch in self._epoch_loader(epoch):
                    loss = self._step(batch)
                    if not math.isfinite(loss):
                        raise FloatingPointError(f"{self.role} loss became {loss} at step "
                                                 f"{st.step + 1}; lower the learning rate")
                    st.epoch_losses.append(loss)
                    st.step += 1
                    st.epoch_step += 1
                    now = time.perf_counter()
                    progress.set_postfix(loss=f"{loss:.4f}",
                                         img_s=f"{images_per_step / (now - tick):.1f}",
                                         lr=f"{self.scheduler.get_last_lr()[0]:.2e}")
                    progress.update()
                    tick = now
                    if on_step is not None:
                        on_step(st.step, loss)
                    if st.step >= self.total_steps:
                        break
                    if (cfg.checkpoint_every and st.step % cfg.checkpoint_every == 0
                            and st.epoch_step < self.steps_per_epoch):
                        self._save(self.last_path)
                self._end_epoch(epoch)
                if st.step >= self.total_steps:
                    break
        finally:
            progress.close()
        self.ctx.barrier()
        return TrainResult(self.best_path, self.last_path, st.step, list(st.history))
