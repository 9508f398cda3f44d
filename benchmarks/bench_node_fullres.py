"""The node's own cost at full camera resolution with a GPU-speed predictor, baseline and
current code side by side in one run.

    python benchmarks/bench_node_fullres.py --baseline-tree ../old_checkout \
        [--tree previous=../other_checkout] [--floor] --frames 60 --out /tmp/fullres.md

Each configuration starts ``dudes_node`` through ``benchmarks/fixed_latency_node.py``
(inference = a fixed 3.5 ms with real outputs computed once, see there), sends rgb8 frames of
``--image`` (default 1024x2048) on 1 or 3 cameras, one step at a time (the next only after
every subscribed output of the previous step arrived), and takes the outputs with raw
subscriptions: "received" is the middleware's ``received_timestamp``. Per camera frame:
overhead = (last subscribed output received - input stamp) - the node's inference p50 (from
/diagnostics); input age = the node's stamp -> worker figure. Subscriber sets: ``all`` (every
per-pixel output, colour images included), ``planner`` (``segmentation``, ``confidence``,
``ood_alarm``) and ``planner+regions`` (the planner set and ``ood/mask``, ``ood/regions``,
``ood/points``; the consumer publishes each camera's ``camera_info`` and the node gets a flat
ground, so the regions are found and projected every frame). Configurations run alternately
(baseline, current, baseline, ...) with ``--repeats``, so slow phases of a shared machine hit
both. ``--floor`` adds
``transport_floor_node.py``: the node's topics and transport without its work.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.soak_node import (  # noqa: E402
    emit,
    export_model,
    machine,
    spin_until,
    street_frames,
)
from dudes_ros.argtypes import image_size  # noqa: E402
from dudes_ros.ros.distro import current  # noqa: E402

SETS = {"all": ("segmentation", "segmentation/color", "uncertainty", "uncertainty/color",
                "confidence", "ood", "ood_alarm"),
        "planner": ("segmentation", "confidence", "ood_alarm"),
        "planner+regions": ("segmentation", "confidence", "ood_alarm", "ood/mask",
                            "ood/regions", "ood/points")}
PROFILE = REPO / "config" / "fastdds_full_resolution.xml"


def start(tree: Path, model: Path, cameras: list[str], log: Path, latency_ms: float,
          script: str = "fixed_latency_node.py", **parameters) -> subprocess.Popen:
    values = {"model": model, "backend": "onnxruntime", "device": "cpu",
              "cameras": "[" + ",".join(cameras) + "]", "ood.pixel_threshold": 0.5,
              "ood.frame_threshold": 0.1, "max_input_age": 0.0, "diagnostics_period": 0.5,
              **parameters}
    args = [sys.executable, str(REPO / "benchmarks" / script), "--ros-args"]
    for name, value in values.items():
        args += ["-p", f"{name}:={value}"]
    env = {**os.environ, "PYTHONPATH": str(tree), "DUDES_FIXED_LATENCY_MS": str(latency_ms),
           **dict.fromkeys(current().profile_variables, str(PROFILE))}
    return subprocess.Popen(args, cwd=tree, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)


class Consumer:
    """Cameras and subscribers on one rclpy node; outputs decoded to the header only."""

    def __init__(self, cameras: list[str], outputs: tuple[str, ...], image: tuple[int, int]):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from rosbags.typesys import get_typestore
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        from std_msgs.msg import Bool

        from dudes_ros.messages.conversions import array_to_image_fields
        from dudes_ros.messages.outputs import OUTPUT_TOPICS
        from dudes_ros.messages.regions import POINT_CLOUD2
        from dudes_ros.messages.types import DIAGNOSTIC_ARRAY, IMAGE, OUTPUT_TYPESTORE
        from dudes_ros.ros.cdr_publisher import CdrPublisher

        self.node = rclpy.create_node("dudes_fullres_bench")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.store = get_typestore(OUTPUT_TYPESTORE)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.cameras, self.outputs = cameras, outputs
        self.pubs, self.frames, self.subs, self.infos = {}, {}, [], {}
        self.got: dict[tuple[str, str], dict[str, int]] = {}  # (camera, output) -> id -> ns
        self.alarms: dict[str, list[int]] = {c: [] for c in cameras}
        self.diagnostics: dict[str, str] = {}
        for k, camera in enumerate(cameras):
            self.pubs[camera] = CdrPublisher(self.node.create_publisher(
                Image, f"{camera}/image", qos_profile_sensor_data), self.store, IMAGE)
            self.frames[camera] = [array_to_image_fields(rgb, "rgb8")
                                   for rgb in street_frames(3, image, k)]
            if "ood/points" in outputs:  # a 90 degree lens, centred
                info = CameraInfo(height=image[0], width=image[1])
                info.k = [image[1] / 2, 0.0, image[1] / 2 - 0.5, 0.0, image[1] / 2,
                          image[0] / 2 - 0.5, 0.0, 0.0, 1.0]
                self.infos[camera] = (self.node.create_publisher(
                    CameraInfo, f"{camera}/camera_info", reliable), info)
            for name in outputs:
                if name == "ood_alarm":
                    self.subs.append(self.node.create_subscription(
                        Bool, f"{camera}/{name}",
                        lambda raw, info, c=camera: self.alarms[c].append(
                            info["received_timestamp"]), reliable, raw=True))
                    continue
                self.got[(camera, name)] = {}
                msgtype = OUTPUT_TOPICS[name]
                msg_type = {IMAGE: Image, DIAGNOSTIC_ARRAY: DiagnosticArray,
                            POINT_CLOUD2: PointCloud2}[msgtype]
                self.subs.append(self.node.create_subscription(
                    msg_type, f"{camera}/{name}",
                    lambda raw, info, c=camera, n=name, t=msgtype: self._on(c, n, t, raw, info),
                    reliable, raw=True))
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, reliable)
        self.image_type = IMAGE

    def _on(self, camera, name, msgtype, raw, info) -> None:
        msg = self.store.deserialize_cdr(memoryview(raw), msgtype)
        self.got[(camera, name)][msg.header.frame_id] = info["received_timestamp"]

    def _on_diag(self, msg) -> None:
        for status in msg.status:
            if status.name.endswith("dudes_node: inference"):
                self.diagnostics = {kv.key: kv.value for kv in status.values}

    def spin_until(self, condition, timeout: float) -> bool:
        return spin_until(self.executor, condition, timeout)

    def ready(self) -> bool:
        return all(p.publisher.get_subscription_count() > 0 for p in self.pubs.values()) and all(
            s.get_publisher_count() > 0 for s in self.subs)

    def step(self, seq: int) -> dict[str, tuple[int, int]] | None:
        """Send frame ``seq`` on every camera; ``{camera: (stamp, last output received)}``."""
        types = self.store.types
        sent = {}
        counts = {c: len(a) for c, a in self.alarms.items()}
        for pub, info in self.infos.values():  # as a camera driver: camera_info with each frame
            pub.publish(info)
        for camera, pub in self.pubs.items():
            stamp = time.time_ns()
            sec, nanosec = divmod(stamp, 1_000_000_000)
            header = types["std_msgs/msg/Header"](
                stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                frame_id=f"{camera}:{seq}")
            frames = self.frames[camera]
            pub.publish(types[self.image_type](header=header, **frames[seq % len(frames)]))
            sent[camera] = stamp

        def arrived() -> bool:
            return all(f"{c}:{seq}" in got for (c, _), got in self.got.items()) and all(
                len(a) > counts[c] for c, a in self.alarms.items()
                if "ood_alarm" in self.outputs)
        if not self.spin_until(arrived, 5.0):
            return None
        result = {}
        for camera, stamp in sent.items():
            times = [got[f"{camera}:{seq}"] for (c, _), got in self.got.items() if c == camera]
            if "ood_alarm" in self.outputs:
                times.append(self.alarms[camera][counts[camera]])
            result[camera] = (stamp, max(times))
        return result

    def close(self) -> None:
        self.node.destroy_node()


def run_config(tree: Path, model: Path, cameras: list[str], outputs: str, image, frames: int,
               warmup: int, latency_ms: float, workdir: Path, label: str,
               script: str, **parameters) -> dict:
    log = workdir / f"{label}.log"
    process = start(tree, model, cameras, log, latency_ms, script, **parameters)
    consumer = Consumer(cameras, SETS[outputs], image)
    try:
        if not consumer.spin_until(consumer.ready, 90):
            raise RuntimeError(f"{label}: node not ready:\n{log.read_text()[-2000:]}")
        overhead_src: list[float] = []
        seq = 0
        missed = 0
        while len(overhead_src) < frames * len(cameras):
            result = consumer.step(seq)
            seq += 1
            missed = missed + 1 if result is None else 0
            if missed == 10:  # a subscribed output never comes: say so instead of waiting on
                raise RuntimeError(f"{label}: 10 steps in a row without all outputs:\n"
                                   f"{log.read_text()[-2000:]}")
            if seq <= warmup or result is None:
                continue
            overhead_src += [(last - stamp) * 1e-6 for stamp, last in result.values()]
            time.sleep(0.05)  # the node idle between steps, as between camera frames
        consumer.diagnostics = {}
        consumer.spin_until(lambda: consumer.diagnostics, 5.0)
        diag = consumer.diagnostics
    finally:
        consumer.close()
        process.send_signal(2)
        process.wait(timeout=30)
    inference = float(diag["inference_p50_ms"])
    age_key = "header_age_p50_ms" if "header_age_p50_ms" in diag else "input_age_p50_ms"
    e2e = np.asarray(overhead_src)
    return {"inference_p50": inference,
            "overhead_p50": float(np.percentile(e2e, 50)) - inference,
            "overhead_p95": float(np.percentile(e2e, 95)) - inference,
            "input_age_p50": float(diag[age_key]),
            "input_age_p95": float(diag[age_key.replace("p50", "p95")]),
            # arrival at the node -> its last publish, minus inference (nodes that report it)
            "node_own_p50": float(diag.get("node_overhead_p50_ms", "nan"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-tree", type=Path, default=None,
                        help="a checkout of the code to compare with (its dudes_ros is used)")
    parser.add_argument("--image", type=image_size, default=(1024, 2048), metavar="HxW")
    parser.add_argument("--net-size", type=image_size, default=(64, 128), metavar="HxW",
                        help="random-init student for the once-computed real outputs")
    parser.add_argument("--frames", type=int, default=60, help="measured steps per config")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=3.5)
    parser.add_argument("--tree", action="append", default=[], metavar="LABEL=PATH",
                        help="another checkout to run side by side, rows labelled LABEL")
    parser.add_argument("--floor", action="store_true",
                        help="also run benchmarks/transport_floor_node.py: the node's topics "
                        "and transport without its work")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    import rclpy

    trees = [("current", REPO, "fixed_latency_node.py")]
    if args.baseline_tree:
        trees.insert(0, ("baseline", args.baseline_tree.resolve(), "fixed_latency_node.py"))
    for spec in args.tree:
        label, _, path = spec.partition("=")
        trees.insert(-1, (label, Path(path).resolve(), "fixed_latency_node.py"))
    if args.floor:
        trees.append(("floor", REPO, "transport_floor_node.py"))
    configs = [("1 camera, planner", ["front"], "planner", {}),
               ("1 camera, all outputs", ["front"], "all", {}),
               ("3 cameras, planner", ["front", "left", "right"], "planner", {}),
               ("1 camera, all outputs, output_scale 0.5", ["front"], "all",
                {"output_scale": 0.5}),
               ("1 camera, planner + anomaly regions", ["front"], "planner+regions",
                {"ground.height": 1.5})]
    rows = []
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.update(dict.fromkeys(current().profile_variables, str(PROFILE)))
    rclpy.init()
    try:
        with tempfile.TemporaryDirectory(prefix="dudes_fullres_") as tmp:
            model = export_model(Path(tmp), args.net_size)
            for repeat in range(args.repeats):
                for title, cameras, outputs, params in configs:
                    for name, tree, script in trees:
                        r = run_config(tree, model, cameras, outputs, args.image, args.frames,
                                       args.warmup, args.latency_ms, Path(tmp),
                                       f"{name}-{repeat}-{len(rows)}", script, **params)
                        row = (f"| {title} | {name} | {r['overhead_p50']:.1f} / "
                               f"{r['overhead_p95']:.1f} | {r['inference_p50']:.2f} | "
                               f"{r['input_age_p50']:.1f} / {r['input_age_p95']:.1f} | "
                               f"{r['node_own_p50']:.1f} |")
                        rows.append(row)
                        print(row, flush=True)
    finally:
        rclpy.shutdown()
    h, w = args.image
    text = "\n".join([
        f"### Node cost at {w}x{h} with a {args.latency_ms} ms fixed-latency predictor",
        "",
        f"- command: `python benchmarks/bench_node_fullres.py {' '.join(argv or sys.argv[1:])}`",
        f"- machine: {machine()}",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- {args.frames} measured steps per row after {args.warmup} warm-up; overhead = last "
        "subscribed output received - input stamp - the node's inference p50, per camera frame",
        "",
        "| configuration | code | overhead ms p50 / p95 | inference ms p50 | "
        "input age ms p50 / p95 | node's own ms p50 (arrival -> last publish - inference) |",
        "|---|---|---|---|---|---|",
        *rows, ""])
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
