"""Throughput of ``dudes process-bag`` with the ONNX Runtime backend on CPU, and the share of
wall time spent outside inference (reading, decoding, scoring, serialising, writing; goal
<= 10 %). Writes a Markdown report.

    python benchmarks/bench_process_bag.py --out /tmp/bench_process_bag.md \
        [--frames 12] [--image 1024x2048] [--net-size 512x1024]

The student is random-init and full-size (DeepLabV3+, ResNet-18, 256 decoder channels):
latency does not depend on the weights. For each input kind (raw rgb8 Image, JPEG
CompressedImage) a rosbag2 MCAP bag of camera-sized frames is written, processed end to end by
``process_bag`` into a new MCAP bag, and compared with a bare ``Predictor.predict`` loop over
the same decoded frames. "Outside inference" = 1 - (time inside ``predict``) / (wall time of
the frame loop).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from dudes_ros.argtypes import image_size  # noqa: E402
from dudes_ros.bag.process import ProcessOptions, process_bag  # noqa: E402
from dudes_ros.export.onnx_export import export_onnx  # noqa: E402
from dudes_ros.inference.factory import create_predictor  # noqa: E402
from dudes_ros.model.config import ModelConfig  # noqa: E402
from dudes_ros.model.student import SegmentationNet  # noqa: E402
from dudes_ros.perception import OodConfig  # noqa: E402

TYPESTORE = get_typestore(Stores.ROS2_KILTED)


def frame(index: int, shape: tuple[int, int]) -> np.ndarray:
    """A street-like test frame: sky/road gradient, noise, a moving block; uint8 [H, W, 3]."""
    h, w = shape
    rng = np.random.default_rng(index)
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    base = (np.array([120, 160, 220], np.float32) * (1 - yy)
            + np.array([90, 90, 95], np.float32) * yy)
    image = np.broadcast_to(base, (h, w, 3)) + rng.normal(0, 12, (h, w, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    x = (index * w // 16) % (w - w // 8)
    image[h // 2: h // 2 + h // 8, x: x + w // 8] = (200, 40, 40)
    return image


def write_bag(path: Path, kind: str, n: int, shape: tuple[int, int]) -> None:
    types = TYPESTORE.types
    msgtype = "sensor_msgs/msg/Image" if kind == "raw" else "sensor_msgs/msg/CompressedImage"
    topic = "/camera/image_raw" + ("" if kind == "raw" else "/compressed")
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection(topic, msgtype, typestore=TYPESTORE)
        for i in range(n):
            rgb = frame(i, shape)
            header = types["std_msgs/msg/Header"](
                stamp=types["builtin_interfaces/msg/Time"](sec=i // 10, nanosec=i % 10 * 10**8),
                frame_id="camera")
            if kind == "raw":
                msg = types[msgtype](header=header, height=shape[0], width=shape[1],
                                     encoding="rgb8", is_bigendian=0, step=shape[1] * 3,
                                     data=rgb.ravel())
            else:
                ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                        [cv2.IMWRITE_JPEG_QUALITY, 90])
                assert ok
                msg = types[msgtype](header=header, format="jpeg", data=data.ravel())
            writer.write(conn, i * 10**8, TYPESTORE.serialize_cdr(msg, msgtype))


def bare_loop(predictor, n: int, shape: tuple[int, int]) -> float:
    """Seconds for ``predict`` alone over the same n frames (already decoded)."""
    frames = [frame(i, shape)[None] for i in range(n)]
    start = time.perf_counter()
    for f in frames:
        predictor.predict(f)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_process_bag.md"))
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--image", type=image_size, default=(1024, 2048), help="HxW of the frames")
    parser.add_argument("--net-size", type=image_size, default=(512, 1024), help="HxW of the net")
    parser.add_argument("--kinds", nargs="+", default=["raw", "jpeg"], choices=["raw", "jpeg"])
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_bag_") as tmp_name:
        tmp = Path(tmp_name)
        torch.manual_seed(0)
        net = SegmentationNet(ModelConfig(input_size=args.net_size)).eval()
        onnx = export_onnx(net, tmp / "student.onnx",
                           parity_shapes=[(1, *args.net_size)]).onnx_path
        ood = OodConfig(pixel_threshold=0.5, frame_threshold=0.1)
        with create_predictor(onnx, backend="onnxruntime", device="cpu") as predictor:
            predictor.predict(frame(0, args.image)[None])  # warm-up: session, allocations
            for kind in args.kinds:
                write_bag(tmp / f"in_{kind}", kind, args.frames, args.image)
                summary = process_bag(tmp / f"in_{kind}", tmp / f"out_{kind}", predictor, ood,
                                      ProcessOptions(progress=False))
                bare = bare_loop(predictor, args.frames, args.image)
                size_mb = sum(p.stat().st_size for p in (tmp / f"out_{kind}").iterdir()) / 2**20
                rows.append((kind, summary, bare, size_mb))
                print(f"{kind}: {summary['fps']:.3f} frames/s, "
                      f"{100 * summary['outside_inference_share']:.1f} % outside inference")

    h, w = args.image
    lines = [
        "# `dudes process-bag` throughput (ONNX Runtime, CPU)",
        "",
        f"Frames {h}x{w} (Cityscapes camera size) -> student input {args.net_size[0]}x"
        f"{args.net_size[1]} (resize inside the graph), random-init full-size student, "
        f"{args.frames} frames per bag, MCAP in and out; outputs: segmentation, uncertainty "
        "(32FC1), confidence, ood, ood_alarm.",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores "
        f"(shared with other jobs), onnxruntime CPUExecutionProvider, torch {torch.__version__}.",
        "",
        "| input | frames/s (process-bag) | frames/s (bare predict) | latency p50 / p95 ms "
        "| inference p50 ms | outside inference | output MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, s, bare, size_mb in rows:
        label = "rgb8 Image" if kind == "raw" else "JPEG CompressedImage"
        lines.append(
            f"| {label} | {s['fps']:.3f} | {args.frames / bare:.3f} | "
            f"{s['latency_ms']['p50']:.0f} / {s['latency_ms']['p95']:.0f} | "
            f"{s['inference_ms']['p50']:.0f} | "
            f"{100 * s['outside_inference_share']:.1f} % | {size_mb:.0f} |")
    lines += ["", "Goal: outside inference <= 10 %.",
              "Command: `python benchmarks/bench_process_bag.py " + " ".join(sys.argv[1:]) + "`",
              ""]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
