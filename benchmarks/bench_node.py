"""Node overhead and bounded frame age of ``dudes_node`` on the CPU (ONNX Runtime).

    python benchmarks/bench_node.py --out /tmp/bench_node.md [--frames 200] [--duration 300] \
        [--model engines/dudes_student.onnx] [--settle 0.25]

Part 1, overhead: one camera, 1024x512 rgb8 frames sent one at a time (the next only after all
four stamped outputs of the previous one arrived). End-to-end latency = input stamp -> the last
of segmentation, uncertainty, confidence and ood received here, "received" being the
middleware's ``received_timestamp`` of each output (rmw message info); the predictor time is
the node's own ``inference`` percentile in /diagnostics over the same frames (its window holds
the last 300), so overhead = end-to-end - inference at p50 and p95 (goal: <= 5 ms p50 and
<= 10 % of inference). After sending a frame this process sleeps ``--settle`` seconds before
its rclpy executor takes the outputs: the middleware's own threads still receive and stamp
every output meanwhile, but on a 2-core machine the executor taking 3 MiB of outputs per
frame would compete with the node for the cores while it still publishes (``--settle 0``
measures that way; BENCHMARKS.md has both side by side). Also listed: the node's per-frame
``node_overhead`` percentiles (arrival at the node -> published, minus inference) and its
``header_age`` (stamp -> taken by the worker), and, with ``--settle 0``, the
end-to-end latency when the last output's Python callback ran here. The student is
a random-init ResNet-18 with 16 decoder channels at ``--net-size`` (the fastest inference, so
the largest overhead share), or the ONNX given by ``--model`` (e.g. the bundled one).

Part 2, slower inference than the input: one camera at 30 Hz for ``--duration`` seconds with a
student at ``--slow-net-size`` (inference well above 33 ms), through the soak driver of
``soak_node.py``: the age of every processed frame (stamp -> output received) must stay within
one inference period (the longest interval between outputs) + ``max_input_age``, and RSS flat.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.soak_node import (  # noqa: E402
    STAMPED_OUTPUTS,
    Driver,
    SoakSettings,
    emit,
    export_model,
    image_size,
    machine,
    markdown,
    soak,
    start_node,
)


def overhead(workdir: Path, frames: int, warmup: int, image: tuple[int, int],
             net_size: tuple[int, int], model: Path | None = None, settle: float = 0.25,
             progress: bool = True) -> dict:
    """Part 1: per-frame end-to-end latency of sequential frames and the node's percentiles
    (``model``: an exported student; None = a random-init 16-channel one at ``net_size``;
    ``settle``: seconds to sleep after sending a frame before taking its outputs)."""
    import numpy as np
    import rclpy
    from tqdm import tqdm

    settings = SoakSettings(cameras=("front",), image=image, net_size=net_size)
    if model is None:
        model = export_model(workdir, net_size)
        student = f"random-init ResNet-18/16ch at {net_size[1]}x{net_size[0]}"
    else:
        student = f"{model.name} at {net_size_of(model)}"
    log = workdir / "overhead_node.log"
    process = start_node(model, log, settings.cameras, max_input_age=0.0,
                         diagnostics_period=0.5)
    rclpy.init()
    driver = Driver(settings, process.pid)
    try:
        driver.wait_ready()
        outputs = driver.record.outputs
        last_ms, first_ms, callback_ms = [], [], []
        for seq in tqdm(range(warmup + frames), desc="overhead", disable=not progress):
            frame_id = f"front:{seq}"

            def arrived(fid=frame_id):
                return all(any(row[0] == fid for row in outputs[("front", n)][-3:])
                           for n in STAMPED_OUTPUTS)
            for _ in range(5):  # best effort: the first frames after discovery may be lost
                driver.publish(seq)
                time.sleep(settle)
                if driver.spin_until(arrived, 5.0):
                    break
            else:
                raise RuntimeError(f"no outputs for {frame_id}; node log:\n{log.read_text()}")
            stamp = driver.record.sent["front"][frame_id]
            rows = [next(r for r in outputs[("front", n)][-3:] if r[0] == frame_id)
                    for n in STAMPED_OUTPUTS]
            if seq >= warmup:
                last_ms.append((max(r[3] for r in rows) - stamp) * 1e-6)
                first_ms.append((min(r[3] for r in rows) - stamp) * 1e-6)
                callback_ms.append((max(r[2] for r in rows) - stamp) * 1e-6)
            time.sleep(0.02)
        driver.record.diagnostics = {}
        driver.spin_until(lambda: driver.record.diagnostics, 5.0)
        diag = driver.record.diagnostics
    finally:
        driver.close()
        rclpy.shutdown()
        process.send_signal(2)
        process.wait(timeout=30)
    result = {"frames": frames, "warmup": warmup, "image": image, "student": student,
              "settle": settle, "node_processed": int(diag["frames_processed"]),
              "over_settle": sum(ms > settle * 1e3 for ms in last_ms)}
    for q in (50, 95):
        inference = float(diag[f"inference_p{q}_ms"])
        e2e = float(np.percentile(last_ms, q))
        result[f"p{q}"] = {
            "end_to_end_ms": e2e, "first_output_ms": float(np.percentile(first_ms, q)),
            "callback_ms": float(np.percentile(callback_ms, q)),
            "inference_ms": inference, "overhead_ms": e2e - inference,
            "overhead_pct": (e2e - inference) / inference * 100,
            "node_overhead_ms": float(diag[f"node_overhead_p{q}_ms"]),
            "input_age_ms": float(diag[f"header_age_p{q}_ms"])}
    return result


def net_size_of(model: Path) -> str:
    """``WxH`` network input of an exported student, from its manifest."""
    from dudes_ros.runtime.manifest import load_manifest

    h, w = load_manifest(model)["input"]["network_input_size"]
    return f"{w}x{h}"


def overhead_markdown(result: dict, command: str) -> str:
    rows = []
    settle = result["settle"]
    for q in ("p50", "p95"):
        r = result[q]
        callback = f"{r['callback_ms']:.1f}" if settle == 0 else "-"
        rows.append(f"| {q} | {r['end_to_end_ms']:.1f} | {r['first_output_ms']:.1f} | "
                    f"{callback} | {r['inference_ms']:.1f} | {r['overhead_ms']:.1f} "
                    f"({r['overhead_pct']:.1f} %) | {r['node_overhead_ms']:.1f} | "
                    f"{r['input_age_ms']:.1f} |")
    p50 = result["p50"]
    goal = p50["overhead_ms"] <= 5.0 and p50["overhead_pct"] <= 10.0
    h, w = result["image"]
    return "\n".join([
        "### Node overhead (sequential frames)",
        "",
        f"- command: `{command}`",
        f"- machine: {machine()}",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- input: 1 camera, rgb8 {w}x{h}, {result['frames']} frames after "
        f"{result['warmup']} warm-up; student {result['student']}, ONNX Runtime CPU",
        f"- consumer: takes the outputs {settle} s after sending each frame"
        + (f" ({result['over_settle']} frames took longer)" if result["over_settle"] else ""),
        "",
        "| percentile | end-to-end ms (last output received) | first output ms | "
        "last output's Python callback ms | node inference ms | overhead ms (% of inference) | "
        "node's own overhead ms (to publish) | input age ms (stamp -> worker) |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Goal (<= 5 ms p50 and <= 10 % of inference): {'PASS' if goal else 'FAIL'}",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the Markdown blocks here as well")
    parser.add_argument("--frames", type=int, default=200, help="part 1: measured frames")
    parser.add_argument("--warmup-frames", type=int, default=3)
    parser.add_argument("--image", type=image_size, default=(512, 1024), help="HxW of the frames")
    parser.add_argument("--net-size", type=image_size, default=(128, 256),
                        help="part 1: HxW of the random-init student's input")
    parser.add_argument("--model", type=Path, default=None,
                        help="part 1: this exported student (.onnx with its manifest) instead")
    parser.add_argument("--settle", type=float, default=0.25,
                        help="part 1: seconds between sending a frame and taking its outputs "
                             "(0: take them while they arrive)")
    parser.add_argument("--duration", type=float, default=300.0,
                        help="part 2: seconds of 30 Hz input (0 skips part 2)")
    parser.add_argument("--warmup", type=float, default=30.0,
                        help="part 2: seconds excluded from the RSS growth")
    parser.add_argument("--slow-net-size", type=image_size, default=(256, 512),
                        help="part 2: HxW of the (slower) student's input")
    parser.add_argument("--max-input-age", type=float, default=0.5)
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_node.py " + " ".join(argv or sys.argv[1:])
    blocks = []
    with tempfile.TemporaryDirectory(prefix="dudes_bench_node_") as tmp:
        result = overhead(Path(tmp), args.frames, args.warmup_frames, args.image,
                          args.net_size, args.model, args.settle)
        blocks.append(overhead_markdown(result, command))
        ok = result["p50"]["overhead_ms"] <= 5.0 and result["p50"]["overhead_pct"] <= 10.0
        if args.duration > 0:
            settings = SoakSettings(duration=args.duration, warmup=args.warmup,
                                    cameras=("front",), image=args.image,
                                    net_size=args.slow_net_size,
                                    max_input_age=args.max_input_age)
            results = soak(settings, Path(tmp), progress=True)
            blocks.append(markdown(results, "Frame age and memory with inference slower than "
                                   "the 30 Hz input", command))
            ok = ok and all(results["goals"].values())
    text = "\n".join(blocks)
    emit(text, args.out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
