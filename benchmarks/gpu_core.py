"""The ROS-free core on a CUDA GPU: ``PerceptionCore`` + ``OutputBuilder`` per frame, with the
torch backend, at full camera resolution, for 1 and several cameras. Reports inference time
and the host-side time around it (scoring, confidence image, output messages) per frame.

    python benchmarks/gpu_core.py --image 1024x2048 --cameras 1 3 --frames 60 --out gpu.md

``--model`` defaults to the bundled student (its ONNX run by torch through onnx2torch, fp32);
``--random-student`` adds rows for a random-init student of the same config run from memory
like a checkpoint (fp16, CUDA graphs), the path ``backend: torch`` takes for a .pt file.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dudes_ros.argtypes import image_size  # noqa: E402
from dudes_ros.export.parity import parity_images  # noqa: E402
from dudes_ros.files import atomic_write_bytes  # noqa: E402
from dudes_ros.inference.factory import create_predictor  # noqa: E402
from dudes_ros.perception import OodConfig, PerceptionCore  # noqa: E402
from dudes_ros.resources import bundled_model  # noqa: E402

OOD = OodConfig(pixel_threshold=0.36, frame_threshold=0.002)


def percentiles(values: list[float]) -> str:
    q = np.percentile(values, [50, 95])
    return f"{q[0]:.2f} / {q[1]:.2f}"


def measure(predictor, cameras: int, size: tuple[int, int], frames: int) -> dict[str, str]:
    from rosbags.typesys import Stores, get_typestore

    from dudes_ros.messages.outputs import DEFAULT_ON_DEMAND, IMAGE_TOPICS, OutputBuilder
    from dudes_ros.messages.regions import REGION_TOPICS

    store = get_typestore(Stores.ROS2_KILTED)
    names = [f"cam{i}" for i in range(cameras)]
    spent = []
    predict = predictor.predict

    def timed(batch):  # inference = every predict call of the step (batches may be split)
        start = time.perf_counter()
        out = predict(batch)
        spent.append((time.perf_counter() - start) * 1e3)
        return out

    predictor.predict = timed
    core = PerceptionCore(predictor, OOD, names)
    images = parity_images(cameras, *size, seed=1)
    header = store.types["std_msgs/msg/Header"](
        stamp=store.types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="cam")
    rows = {"inference": [], "host": [], "host_colour": []}
    for i in range(frames + 5):
        # the per-pixel images only, as before the anomaly regions (measured on their own)
        for colours, key in ((DEFAULT_ON_DEMAND - set(REGION_TOPICS), "host"),
                             (IMAGE_TOPICS - set(REGION_TOPICS), "host_colour")):
            builder = OutputBuilder(store, colours)
            spent.clear()
            start = time.perf_counter()
            results = core.process({n: images[j] for j, n in enumerate(names)})
            for name, result in results.items():
                for _ in builder.messages(header, name, result):
                    pass
            total = (time.perf_counter() - start) * 1e3
            inference = sum(spent)
            if i >= 5:  # warm-up: cuDNN autotuning, graph capture
                if key == "host":
                    rows["inference"].append(inference / cameras)
                rows[key].append((total - inference) / cameras)
    return {k: percentiles(v) for k, v in rows.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--image", type=image_size, default=(1024, 2048), metavar="HxW")
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--random-student", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    import torch

    model = args.model or bundled_model()
    lines = [f"# PerceptionCore + OutputBuilder on {torch.cuda.get_device_name(0)}", "",
             f"torch {torch.__version__}, Python {platform.python_version()}, image "
             f"{args.image[0]}x{args.image[1]}, {args.frames} frames after 5 warm-up; "
             "ms per frame, p50 / p95. host = scoring + confidence + building the outputs "
             "without colour images; host_colour = with both colour images.", ""]
    auto = create_predictor(model)
    lines += [f"auto chose: {auto.backend} ({auto.selected_because})", ""]
    auto.close()
    contenders = [("bundled ONNX via onnx2torch, fp32", dict(cuda_graphs=False)),
                  ("bundled ONNX via onnx2torch, fp32, CUDA graphs", dict(cuda_graphs=True))]
    lines += ["| model | cameras | inference | host | host_colour |", "|---|---|---|---|---|"]
    for label, options in contenders:
        for cameras in args.cameras:
            try:
                predictor = create_predictor(model, backend="torch", device="cuda", **options)
                row = measure(predictor, cameras, args.image, args.frames)
                predictor.close()
                lines.append(f"| {label} | {cameras} | {row['inference']} | {row['host']} | "
                             f"{row['host_colour']} |")
            except Exception as exc:  # noqa: BLE001 - a failed contender is a result too
                lines.append(f"| {label} | {cameras} | failed: {exc!r} | | |")
            print(lines[-1], flush=True)
    if args.random_student:
        from dudes_ros.inference.torch_backend import TorchPredictor
        from dudes_ros.model.config import ModelConfig
        from dudes_ros.model.student import SegmentationNet
        from dudes_ros.runtime.manifest import load_manifest

        config = load_manifest(model)["model_config"]
        net = SegmentationNet(ModelConfig(**{k: tuple(v) if isinstance(v, list) else v
                                             for k, v in config.items()}))
        for cameras in args.cameras:
            predictor = TorchPredictor(net, device="cuda")
            row = measure(predictor, cameras, args.image, args.frames)
            predictor.close()
            lines.append(f"| random-init student, fp16 + CUDA graphs | {cameras} | "
                         f"{row['inference']} | {row['host']} | {row['host_colour']} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        atomic_write_bytes(args.out, text.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
