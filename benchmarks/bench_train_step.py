"""Time and peak memory of one training step of a recipe's member or student, on any device.

One optimizer step as ``dudes train-teacher`` / ``train-student`` takes it (the recipe's
network, SGD parameter groups, fp16 autocast + GradScaler on CUDA, the CE loss, and for the
student the frozen ensemble's u_T on the same crop plus λ·RMSLE) on random images and labels:
the cost does not depend on the data or the weights. Data loading is left out (measure the
loader apart: at Cityscapes size it needs enough workers to decode 2-megapixel PNGs).

    python benchmarks/bench_train_step.py --recipe cityscapes --role student --batch 2 --steps 2

Prints one JSON line: seconds per step (median of the timed steps, after one warm-up step),
images per second, and the peak memory: CUDA ``max_memory_allocated``, or on a CPU the
process's peak resident set (``ru_maxrss``) and its growth over the model alone. Run each
configuration in its own process so that the CPU peak is its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import statistics
import time

import torch

from dudes_ros.argtypes import image_size, positive_int
from dudes_ros.model.ensemble import Ensemble
from dudes_ros.model.student import SegmentationNet, normalize
from dudes_ros.train.loop import distillation_loss
from dudes_ros.train.recipes import load_recipe


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="synthetic")
    parser.add_argument("--role", choices=("member", "student"), default="member")
    parser.add_argument("--batch", type=positive_int, default=None,
                        help="per-process batch (default: the recipe's)")
    parser.add_argument("--crop", type=image_size, default=None, metavar="HxW",
                        help="training crop (default: the recipe's data.crop_size)")
    parser.add_argument("--steps", type=positive_int, default=3, help="timed steps")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    recipe = load_recipe(args.recipe)
    schedule = recipe.student if args.role == "student" else recipe.teacher
    batch = args.batch or schedule.batch_size
    crop = args.crop or recipe.data.crop_size
    device = torch.device(args.device)
    amp = schedule.amp and device.type == "cuda"
    torch.manual_seed(0)
    config = dataclasses.replace(recipe.model, encoder_weights=None,
                                 uncertainty_head=args.role == "student")
    net = SegmentationNet(config).to(device).train()
    teacher = None
    if args.role == "student":
        member = dataclasses.replace(config, uncertainty_head=False)
        teacher = Ensemble([SegmentationNet(member) for _ in range(recipe.members)]).to(device)
        teacher.eval()
    optimizer = torch.optim.SGD(net.parameter_groups(schedule.lr, schedule.head_lr_factor),
                                lr=schedule.lr, momentum=schedule.momentum,
                                weight_decay=schedule.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    images = torch.randint(0, 256, (batch, *crop, 3), dtype=torch.uint8, device=device)
    labels = torch.randint(0, config.num_classes, (batch, *crop), device=device)
    model_rss = peak_rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        x = normalize(images, config)
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            loss, _ = distillation_loss(net, x, labels, teacher, schedule.uncertainty_weight)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    step()  # warm-up: allocator, cuDNN algorithm choice
    times = [step() for _ in range(args.steps)]
    seconds = statistics.median(times)
    result = {"recipe": recipe.name, "role": args.role, "members": recipe.members
              if teacher is not None else None, "batch": batch, "crop": list(crop),
              "decoder_channels": config.decoder_channels, "device": str(device),
              "amp": amp, "threads": torch.get_num_threads(), "steps": args.steps,
              "s_per_step": round(seconds, 4), "images_per_s": round(batch / seconds, 2),
              "machine": f"{platform.machine()}, torch {torch.__version__}"}
    if device.type == "cuda":
        result["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        result["gpu"] = torch.cuda.get_device_name(device)
    else:
        result["peak_rss_mib"] = round(peak_rss_mib(), 1)
        result["step_rss_growth_mib"] = round(peak_rss_mib() - model_rss, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
