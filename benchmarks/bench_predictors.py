"""Latency of the deploy path: student vs an M-member ensemble, ONNX Runtime vs torch, and the
student on a CUDA GPU at 1024x2048 and 512x1024 (batch 1 and 8). Writes a Markdown report.

    python benchmarks/bench_predictors.py --out /tmp/bench_predictors.md [--members 10]

Models are random-init, full-size (DeepLabV3+, ResNet-18, 256 decoder channels): latency does
not depend on the weights. Every row times the same input for all contenders in one run.
"Device" rows time the captured CUDA graph alone (CUDA events); "end-to-end" rows time
``Predictor.predict`` from a host uint8 array to host outputs (copies included).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dudes_ros.export.onnx_export import export_onnx  # noqa: E402
from dudes_ros.export.parity import parity_images  # noqa: E402
from dudes_ros.files import atomic_write_bytes  # noqa: E402
from dudes_ros.inference.onnxruntime_backend import OnnxRuntimePredictor  # noqa: E402
from dudes_ros.inference.torch_backend import TorchPredictor  # noqa: E402
from dudes_ros.model.config import ModelConfig  # noqa: E402
from dudes_ros.model.student import SegmentationNet  # noqa: E402
from dudes_ros.runtime.deploy import DeployModel  # noqa: E402
from dudes_ros.uncertainty import STD_CORRECTION  # noqa: E402

MATMUL_PEAK_TFLOPS = {"H200": 790.0, "H100": 790.0}
"""bf16 dense matmul rate measured on this workplace's H200 (8192^3, torch), TFLOP/s."""


class EnsembleDeploy(nn.Module):
    """The teacher at deploy time, same I/O as ``DeployModel``: uint8 [B, H, W, 3] ->
    (labels uint8 [B, H, W], u_T float32 [B, H, W]); only the statistics the DUDES output
    needs (mean softmax -> argmax, population std of the predicted class's probability)."""

    def __init__(self, members: list[SegmentationNet]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        config = members[0].config
        std = torch.tensor(config.std).view(1, 3, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std))
        self.register_buffer("shift", -torch.tensor(config.mean).view(1, 3, 1, 1) / std)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image.permute(0, 3, 1, 2).float() * self.scale + self.shift
        x = x.to(next(self.members.parameters()).dtype)
        probs = torch.stack([m(x)[0].float().softmax(dim=1) for m in self.members])
        pred = probs.mean(dim=0).argmax(dim=1)
        index = pred.unsqueeze(0).unsqueeze(2).expand(len(self.members), -1, 1, -1, -1)
        u = probs.gather(2, index).squeeze(2).std(dim=0, correction=STD_CORRECTION)
        return pred.to(torch.uint8), u


def make_net(size: tuple[int, int], student: bool, seed: int) -> SegmentationNet:
    torch.manual_seed(seed)
    return SegmentationNet(ModelConfig(input_size=size, uncertainty_head=student)).eval()


def time_calls(fn, iters: int, warmup: int, sync=None) -> list[float]:
    """Wall-clock milliseconds of ``iters`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(1000 * (time.perf_counter() - start))
    return times


def summary(times: list[float]) -> str:
    return f"{statistics.median(times):.2f} (p90 {np.percentile(times, 90):.2f})"


class GraphRunner:
    """A module captured in a CUDA graph for one static input; ``replay_ms`` times replays
    with CUDA events."""

    def __init__(self, module: nn.Module, images: np.ndarray) -> None:
        self.static_in = torch.from_numpy(images).cuda()
        with torch.inference_mode():
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    module(self.static_in)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.out = module(self.static_in)

    def replay_ms(self, iters: int, warmup: int = 5) -> list[float]:
        for _ in range(warmup):
            self.graph.replay()
        times = []
        for _ in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            self.graph.replay()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return times


def gpu_module(net_or_nets, size, ensemble: bool) -> nn.Module:
    """fp16, channels-last deploy module on the GPU."""
    if ensemble:
        members = [m.cuda().half().to(memory_format=torch.channels_last) for m in net_or_nets]
        return EnsembleDeploy(members).cuda().eval()
    net = net_or_nets.cuda().half().to(memory_format=torch.channels_last)
    return DeployModel(net).cuda().eval()


def flops_per_frame(size: tuple[int, int]) -> float:
    """Student forward FLOPs (2 x multiply-adds) for one frame, counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    net = make_net(size, True, 0).to("meta")
    with FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 3, *size, device="meta"))
    return float(counter.get_total_flops())


def cpu_section(args, lines: list[str]) -> None:
    size = tuple(args.cpu_size)
    torch.set_num_threads(args.threads)
    images = parity_images(1, *size, seed=1)
    student = make_net(size, True, 0)
    lines += [f"## CPU ({args.threads} threads, {size[0]}x{size[1]}, batch 1), ms per call", "",
              "| contender | median (p90) ms |", "| --- | --- |"]
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "student.onnx"
        export_onnx(student, onnx_path, parity_shapes=[(1, *size)])
        ort = OnnxRuntimePredictor(onnx_path, device="cpu", threads=args.threads)
        t_ort = time_calls(lambda: ort.predict(images), args.cpu_iters, 2)
        ort.close()
    eager = TorchPredictor(student, device="cpu")
    t_torch = time_calls(lambda: eager.predict(images), args.cpu_iters, 2)
    ensemble = EnsembleDeploy([make_net(size, False, 1 + m) for m in range(args.members)]).eval()
    batch = torch.from_numpy(images)

    def run_ensemble():
        with torch.inference_mode():
            ensemble(batch)
    t_ens = time_calls(run_ensemble, max(2, args.cpu_iters // 3), 1)
    lines += [f"| student, ONNX Runtime | {summary(t_ort)} |",
              f"| student, torch eager | {summary(t_torch)} |",
              f"| {args.members}-member ensemble, torch eager | {summary(t_ens)} |", "",
              f"ONNX Runtime / torch: {statistics.median(t_ort) / statistics.median(t_torch):.2f}."
              f" Student / ensemble (torch, same input): "
              f"{statistics.median(t_torch) / statistics.median(t_ens):.3f} "
              f"(goal <= 1.1/M = {1.1 / args.members:.3f}).", ""]


def gpu_section(args, lines: list[str]) -> None:
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in MATMUL_PEAK_TFLOPS.items() if k in name), None)
    torch.backends.cudnn.benchmark = True
    lines += [f"## CUDA: {name}, torch {torch.__version__}, fp16, channels-last, CUDA graph", "",
              "| model | input | batch | device ms/call (median, p90) | ms/frame | end-to-end "
              "predict ms | GFLOP/frame | TFLOP/s | % of matmul peak |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    results = {}
    for size in [(1024, 2048), (512, 1024)]:
        gflop = flops_per_frame(size) / 1e9
        net = make_net(size, True, 0)
        module = gpu_module(net, size, ensemble=False)
        predictor = TorchPredictor(make_net(size, True, 0), device="cuda")
        for batch in (1, 8):
            images = parity_images(batch, *size, seed=2)
            device_ms = GraphRunner(module, images).replay_ms(args.gpu_iters)
            e2e = time_calls(functools.partial(predictor.predict, images), args.gpu_iters, 3)
            med = statistics.median(device_ms)
            tflops = gflop * batch / med
            results[(size, batch)] = med
            pct = f"{100 * tflops / peak:.1f}" if peak else "n/a"
            lines.append(f"| student | {size[0]}x{size[1]} | {batch} | {summary(device_ms)} | "
                         f"{med / batch:.2f} | {summary(e2e)} | {gflop:.0f} | {tflops:.0f} | "
                         f"{pct} |")
            print(lines[-1], flush=True)
        predictor.close()
        del module
        torch.cuda.empty_cache()
    size = (1024, 2048)
    images = parity_images(1, *size, seed=2)
    members = [make_net(size, False, 1 + m) for m in range(args.members)]
    ens_ms = GraphRunner(gpu_module(members, size, ensemble=True), images).replay_ms(
        max(5, args.gpu_iters // 4))
    med = statistics.median(ens_ms)
    lines.append(f"| {args.members}-member ensemble | 1024x2048 | 1 | {summary(ens_ms)} | "
                 f"{med:.2f} | | | | |")
    ratio = results[(size, 1)] / med
    lines += ["", f"Student / {args.members}-member ensemble at 1024x2048, batch 1, same "
              f"backend and input: {ratio:.3f} (goal <= 1.1/M = {1.1 / args.members:.3f}). "
              "Reference (issue 5, H200, PyTorch fp16 + channels-last + CUDA graphs): student "
              "3.5 ms, 10-member ensemble 36.9 ms.", ""]


def compile_section(args, lines: list[str]) -> None:
    """``TorchPredictor(compile=True)``: TorchInductor + CUDA graph (1024x2048, batch 1)."""
    size = (1024, 2048)
    images = parity_images(1, *size, seed=2)
    start = time.perf_counter()
    predictor = TorchPredictor(make_net(size, True, 0), device="cuda", compile=True)
    predictor.predict(images)
    compile_s = time.perf_counter() - start
    e2e = time_calls(functools.partial(predictor.predict, images), args.gpu_iters, 3)
    ms = GraphRunner(predictor.deploy, images).replay_ms(args.gpu_iters)
    gflop = flops_per_frame(size) / 1e9
    lines += [f"TorchPredictor(compile=True) (TorchInductor max-autotune-no-cudagraphs + CUDA "
              f"graph), student 1024x2048 batch 1: device {summary(ms)} ms "
              f"({gflop / statistics.median(ms):.0f} TFLOP/s), end-to-end predict {summary(e2e)}"
              f" ms; start-up with compilation {compile_s:.0f} s.", ""]
    print(lines[-2], flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_predictors.md"))
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--cpu-size", type=int, nargs=2, default=(256, 512))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cpu-iters", type=int, default=10)
    parser.add_argument("--gpu-iters", type=int, default=50)
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--compile", action="store_true",
                        help="also time a torch.compile'd student on the GPU (minutes)")
    args = parser.parse_args(argv)
    lines = ["# Predictor benchmark", "",
             f"Command: `python benchmarks/bench_predictors.py {' '.join(sys.argv[1:])}`", ""]
    sections = [cpu_section] if not args.skip_cpu else []
    if torch.cuda.is_available():
        sections = [gpu_section] + ([compile_section] if args.compile else []) + sections
    else:
        lines += ["No CUDA GPU visible: GPU rows not measured.", ""]
    for section in sections:
        section(args, lines)
        atomic_write_bytes(args.out, ("\n".join(lines) + "\n").encode())  # after each part
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
