"""Peak memory of `dudes evaluate` as the number of evaluated 1024x2048 frames grows.

Each count runs in its own subprocess and reports its peak resident set size (ru_maxrss). The
full evaluation path runs (upsampling to label size, every streaming metric of the six
uncertainty methods, the student-teacher agreement, example panels); only the networks are
replaced by synthetic network-size outputs so the benchmark measures the evaluation's memory,
not a model's, and finishes in minutes on a CPU.

    .venv/bin/python benchmarks/bench_eval_memory.py --counts 10 100

Writes a Markdown table to ``--output`` (default: <tmp>/bench_eval_memory.md).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dudes_ros.evaluate.runner import Evaluator
from dudes_ros.model.config import ModelConfig
from dudes_ros.model.ensemble import Ensemble
from dudes_ros.model.student import SegmentationNet

NET_SIZE = (64, 128)


class SyntheticOutputs(Evaluator):
    """The real Evaluator with the networks' forward passes replaced by random outputs."""

    def _run(self, name, image):
        g = torch.Generator().manual_seed(self.frames * 7 + len(name))
        probs = torch.rand(1, 19, *NET_SIZE, generator=g).softmax(dim=1)
        keys = {"student": ("u", "max_softmax", "entropy"),
                "teacher": ("u_t", "entropy", "mutual_information"),
                "member": ("max_softmax", "entropy")}[name]
        self.scores[name].latencies_ms.append(0.0)
        return probs, {k: torch.rand(1, *NET_SIZE, generator=g) for k in keys}


def child(count: int, size: tuple[int, int]) -> dict:
    tiny = {"decoder_channels": 8, "input_size": NET_SIZE}
    student = SegmentationNet(ModelConfig(**tiny))
    teacher = Ensemble([SegmentationNet(ModelConfig(uncertainty_head=False, **tiny))
                        for _ in range(2)])
    ev = SyntheticOutputs(student, teacher, teacher.members[0], input_size=NET_SIZE,
                          device=torch.device("cpu"), pixel_threshold=0.5,
                          frame_threshold=0.1, examples=4)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for i in range(count):
        labels = rng.integers(0, 19, (size[0] // 64, size[1] // 64), dtype=np.uint8)
        labels = np.kron(labels, np.ones((64, 64), np.uint8))
        labels[:32] = 255
        anomaly = np.zeros(size, bool)
        anomaly[size[0] // 2:size[0] // 2 + 100, 200:400] = i % 2 == 0
        ev.update({"image": np.zeros((*size, 3), np.uint8), "labels": labels,
                   "anomaly": anomaly, "path": f"frame{i}"})
    seconds = time.perf_counter() - start
    ev.results()
    return {"frames": count, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            / 1024.0, "seconds_per_frame": seconds / count}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--size", type=int, nargs=2, default=[1024, 2048])
    parser.add_argument("--output", default=str(Path(tempfile.gettempdir())
                                                / "bench_eval_memory.md"))
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, tuple(args.size))))
        return 0
    rows = []
    for count in args.counts:
        out = subprocess.run([sys.executable, __file__, "--child", str(count), "--size",
                              *map(str, args.size)], check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    h, w = args.size
    lines = [f"# Evaluation peak memory vs frames ({h}x{w})", "",
             "`python benchmarks/bench_eval_memory.py --counts "
             + " ".join(map(str, args.counts)) + "` (student, 2-member teacher, member; all "
             "six methods' metrics; networks replaced by synthetic outputs)", "",
             "| frames | peak RSS MiB | s / frame |", "|---|---|---|"]
    lines += [f"| {r['frames']} | {r['peak_rss_mib']:.0f} | {r['seconds_per_frame']:.2f} |"
              for r in rows]
    growth = rows[-1]["peak_rss_mib"] - rows[0]["peak_rss_mib"]
    lines += ["", f"Growth from {rows[0]['frames']} to {rows[-1]['frames']} frames: "
              f"{growth:.0f} MiB."]
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
