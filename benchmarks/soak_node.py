"""Soak test of ``dudes_node``: several cameras at a fixed rate for a long time, on the CPU.

    python benchmarks/soak_node.py --out /tmp/soak.md [--duration 600] [--warmup 60] \
        [--cameras front,left] [--rate 30] [--image 512x1024] [--net-size 128x256]

The node runs in its own process with the ONNX Runtime backend on the CPU; this process is the
cameras (rgb8 ``sensor_msgs/Image``, sensor-data QoS, ``frame_id`` = ``<camera>:<seq>``) and the
consumer of every output (segmentation, uncertainty, confidence, ood, ood_alarm, /diagnostics).
The student is a random-init DeepLabV3+ (ResNet-18, 16 decoder channels) exported at
``--net-size``; the deploy graph resizes the camera frames to that size inside the graph, so
the node handles full camera-size messages. Measured:

- the node process's RSS, threads and open file descriptors (psutil), sampled every second;
  RSS growth = median of the last 10 % of the samples over the median of the first 10 % after
  warm-up (goal < 5 %);
- end-to-end latency (input stamp -> output received here) and the node's own inference and
  overhead percentiles from /diagnostics;
- sent / received by the node / processed / dropped (stale, superseded) / rejected / errors;
- completeness: every output must carry the stamp and frame id of a frame that was sent on that
  camera, every processed frame must arrive on all four stamped outputs, and the age of each
  output (receive time - input stamp) must stay within ``max_input_age`` plus one inference
  period (the longest interval between two outputs of a camera).

The same driver runs the 60-second version in ``tests/test_soak.py`` and the slow-inference
run of ``benchmarks/bench_node.py``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# ROS isolation before rclpy is imported; subprocesses inherit it (same as tests/conftest.py).
os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
from dudes_ros.ros.distro import use_profile  # noqa: E402 - needs REPO on sys.path

use_profile(str(REPO / "config" / "fastdds_large_images.xml"))  # Fast DDS 2 and 3 names

from dudes_ros.argtypes import image_size  # noqa: E402
from dudes_ros.files import atomic_write_bytes  # noqa: E402
from dudes_ros.messages.types import DIAGNOSTIC_ARRAY, IMAGE, stamp_ns  # noqa: E402
from dudes_ros.ros.cdr_publisher import CdrPublisher  # noqa: E402

STAMPED_OUTPUTS = ("segmentation", "uncertainty", "confidence", "ood")
STATUS_NAME = "/dudes_node: inference"


@dataclass(frozen=True)
class SoakSettings:
    """What to run: ``image``/``net_size`` are (height, width); times in seconds."""

    duration: float = 600.0
    warmup: float = 60.0
    cameras: tuple[str, ...] = ("front", "left")
    rate: float = 30.0
    image: tuple[int, int] = (512, 1024)
    net_size: tuple[int, int] = (128, 256)
    max_input_age: float = 0.5
    sample_period: float = 1.0
    drain: float = 3.0  # seconds to keep receiving after the last frame was sent


@dataclass
class Record:
    """Everything the driver saw; times are ``time.time_ns()`` (the node uses the same clock)."""

    sent: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    # (camera, topic) -> (frame_id, stamp, callback time, rmw received_timestamp)
    outputs: dict[tuple[str, str], list[tuple[str, int, int, int]]] = field(
        default_factory=lambda: defaultdict(list))
    alarms: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples: list[tuple[float, int, int, int]] = field(default_factory=list)  # t, rss, thr, fds
    diagnostics: dict[str, str] = field(default_factory=dict)
    late_publishes: int = 0
    node_alive: bool = True


def export_model(folder: Path, net_size: tuple[int, int], decoder_channels: int = 16) -> Path:
    """A random-init student exported as a deploy-graph ONNX (manifest beside it)."""
    import torch

    from dudes_ros.export.onnx_export import export_onnx
    from dudes_ros.model.config import ModelConfig
    from dudes_ros.model.student import SegmentationNet

    torch.manual_seed(0)
    net = SegmentationNet(ModelConfig(encoder="resnet18", decoder_channels=decoder_channels,
                                      input_size=net_size)).eval()
    path = folder / f"soak_student_{net_size[0]}x{net_size[1]}.onnx"
    export_onnx(net, path, parity_shapes=[(1, 64, 128)])
    return path


def start_node(model: Path, log: Path, cameras: tuple[str, ...], **parameters) -> subprocess.Popen:
    """``dudes_node`` in its own process (ONNX Runtime on the CPU, autostart; fixed OOD
    thresholds since the random-init student has no calibration)."""
    values = {"model": model, "backend": "onnxruntime", "device": "cpu",
              "cameras": "[" + ",".join(cameras) + "]", "ood__pixel_threshold": 0.5,
              "ood__frame_threshold": 0.1, **parameters}
    args = [sys.executable, "-m", "dudes_ros.ros.node", "--ros-args"]
    for name, value in values.items():
        args += ["-p", f"{name.replace('__', '.')}:={value}"]
    return subprocess.Popen(args, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT)


def street_frames(count: int, size: tuple[int, int], salt: int) -> list[np.ndarray]:
    """``count`` distinct rgb8 frames (sky, facades, road, noise), ``uint8 [H, W, 3]``."""
    h, w = size
    frames = []
    for i in range(count):
        rng = np.random.default_rng(1000 * salt + i)
        image = np.empty((h, w, 3), np.uint8)
        image[: h // 3] = (70, 130, 180)
        columns = (np.arange(w) + 9 * i) // 64 % 2
        image[h // 3: 2 * h // 3] = np.where(columns[:, None], (70, 70, 70), (110, 100, 90))
        image[2 * h // 3:] = (128, 64, 128)
        noise = rng.integers(-8, 9, (h, w, 3), dtype=np.int16)
        frames.append(np.clip(image + noise, 0, 255).astype(np.uint8))
    return frames


def spin_until(executor, condition, timeout: float, step: float = 0.005) -> bool:
    """Spin ``executor`` until ``condition()`` is true (True) or ``timeout`` s passed (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=step)
    return True


def emit(text: str, out: Path | None) -> None:
    """Print a benchmark's Markdown and, with ``out``, write it there atomically."""
    print(text)
    if out:
        atomic_write_bytes(out, text.encode())


class Driver:
    """The cameras and the consumer, on one rclpy node spun from the calling thread."""

    def __init__(self, settings: SoakSettings, node_pid: int) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from rosbags.typesys import get_typestore
        from sensor_msgs.msg import Image
        from std_msgs.msg import Bool

        from dudes_ros.messages.conversions import array_to_image_fields
        from dudes_ros.messages.types import OUTPUT_TYPESTORE

        self.settings = settings
        self.process = psutil.Process(node_pid)
        self.record = Record()
        self.node = rclpy.create_node("dudes_soak_driver")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.typestore = get_typestore(OUTPUT_TYPESTORE)
        self.pubs, self.frames, self._subs = {}, {}, []
        for k, camera in enumerate(settings.cameras):
            self.pubs[camera] = CdrPublisher(self.node.create_publisher(
                Image, f"{camera}/image", qos_profile_sensor_data), self.typestore, IMAGE)
            self.frames[camera] = [array_to_image_fields(rgb, "rgb8")
                                   for rgb in street_frames(6, settings.image, k)]
            for name in STAMPED_OUTPUTS:
                msg_type = DiagnosticArray if name == "ood" else Image
                self._subs.append(self.node.create_subscription(
                    msg_type, f"{camera}/{name}",
                    lambda raw, info, c=camera, n=name: self._on_output(c, n, raw, info),
                    reliable, raw=True))
            self._subs.append(self.node.create_subscription(
                Bool, f"{camera}/ood_alarm", lambda _, c=camera: self._on_alarm(c), reliable))
        self._subs.append(self.node.create_subscription(
            DiagnosticArray, "/diagnostics", self._on_diagnostics, reliable))

    def _on_output(self, camera: str, name: str, raw: bytes, info) -> None:
        """Record an output with two receive times: when this callback ran, and when the
        middleware received it (rmw ``received_timestamp``, same clock), which leaves out the
        ~2 ms this process's Python executor needs per large message. Only the header is
        read (``raw`` CDR decoded by rosbags into views): on 2 cores, decoding every output
        into an rclpy message would take CPU from the node while it still publishes."""
        msgtype = DIAGNOSTIC_ARRAY if name == "ood" else IMAGE
        msg = self.typestore.deserialize_cdr(memoryview(raw), msgtype)
        stamp = stamp_ns(msg.header)
        self.record.outputs[(camera, name)].append((msg.header.frame_id, stamp,
                                                    time.time_ns(), info["received_timestamp"]))

    def _on_alarm(self, camera: str) -> None:
        self.record.alarms[camera] += 1

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name == STATUS_NAME:
                self.record.diagnostics = {kv.key: kv.value for kv in status.values}

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until the node subscribes to every camera and publishes every output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._alive():
                raise RuntimeError("the node exited before it was ready")
            if all(p.publisher.get_subscription_count() > 0 for p in self.pubs.values()) and all(
                    s.get_publisher_count() > 0 for s in self._subs):
                return
            self.executor.spin_once(timeout_sec=0.05)
        raise TimeoutError(f"the node was not ready after {timeout} s")

    def _alive(self) -> bool:
        return self.process.is_running() and self.process.status() != psutil.STATUS_ZOMBIE

    def _sample(self, t0: float) -> None:
        if not self._alive():
            self.record.node_alive = False
            return
        with self.process.oneshot():
            self.record.samples.append((time.monotonic() - t0, self.process.memory_info().rss,
                                        self.process.num_threads(), self.process.num_fds()))

    def run(self, progress: bool = True) -> Record:
        """Publish every camera at ``rate`` for ``duration`` s, sampling the node process."""
        from tqdm import tqdm

        settings = self.settings
        period = 1.0 / settings.rate
        seq = 0
        t0 = time.monotonic()
        end = t0 + settings.duration
        next_frame, next_sample = t0, t0
        with tqdm(total=int(settings.duration), unit="s", desc="soak", disable=not progress,
                  dynamic_ncols=True) as bar:
            while (now := time.monotonic()) < end and self.record.node_alive:
                if now >= next_frame:
                    self.publish(seq)
                    seq += 1
                    next_frame += period
                    if now - next_frame > period:  # fell behind: skip, never burst
                        self.record.late_publishes += int((now - next_frame) / period)
                        next_frame = now + period
                if now >= next_sample:
                    self._sample(t0)
                    next_sample += settings.sample_period
                    bar.update(int(now - t0) - bar.n)
                self.executor.spin_once(
                    timeout_sec=max(0.0, min(next_frame, next_sample) - time.monotonic()))
        drain_end = time.monotonic() + settings.drain
        while time.monotonic() < drain_end:
            self.executor.spin_once(timeout_sec=0.05)
        self._sample(t0)
        return self.record

    def publish(self, seq: int) -> None:
        """Send frame ``seq`` on every camera, stamped now, through ``CdrPublisher`` (one copy
        into a kept buffer before the middleware's, as a C++ camera driver's publish costs; an
        rclpy ``Image`` would add two more copies to the latency charged to the node)."""
        types = self.typestore.types
        for camera, pub in self.pubs.items():
            frames = self.frames[camera]
            frame_id = f"{camera}:{seq}"
            stamp_ns = time.time_ns()
            sec, nanosec = divmod(stamp_ns, 1_000_000_000)
            header = types["std_msgs/msg/Header"](
                stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                frame_id=frame_id)
            msg = types[IMAGE](header=header, **frames[seq % len(frames)])
            self.record.sent[camera][frame_id] = stamp_ns
            pub.publish(msg)

    def spin_until(self, condition, timeout: float) -> bool:
        return spin_until(self.executor, condition, timeout, step=0.01)

    def close(self) -> None:
        self.node.destroy_node()


def _percentiles(values, qs=(50, 95, 99)) -> dict[str, float]:
    values = np.asarray(values, dtype=np.float64)
    out = {f"p{q}": float(np.percentile(values, q)) if values.size else float("nan")
           for q in qs}
    out["max"] = float(values.max()) if values.size else float("nan")
    return out


def analyse(record: Record, settings: SoakSettings) -> dict:
    """Figures and pass/fail of the goals from a driver ``Record``."""
    invalid, incomplete, ages_ms, intervals_ms = 0, 0, [], []
    received: dict[str, set[str]] = {}
    for camera in settings.cameras:
        sent = record.sent[camera]
        per_topic = {}
        for name in STAMPED_OUTPUTS:
            rows = record.outputs[(camera, name)]
            invalid += sum(sent.get(frame_id) != stamp for frame_id, stamp, *_ in rows)
            per_topic[name] = {frame_id for frame_id, *_ in rows}
            if name == "segmentation":
                ages_ms += [(recv - stamp) * 1e-6 for _, stamp, recv, _ in rows]
                recv_times = sorted(recv for _, _, recv, _ in rows)
                intervals_ms += list(np.diff(recv_times) * 1e-6)
        union = set().union(*per_topic.values())
        incomplete += sum(any(f not in ids for ids in per_topic.values()) for f in union)
        incomplete += abs(record.alarms[camera] - len(per_topic["segmentation"]))
        received[camera] = per_topic["segmentation"]
    diag = record.diagnostics
    samples = np.asarray(record.samples, dtype=np.float64).reshape(-1, 4)
    after = samples[samples[:, 0] >= settings.warmup] if samples.size else samples
    tenth = max(1, len(after) // 10)
    rss_mb = after[:, 1] / 2**20 if len(after) else np.zeros(0)
    baseline = float(np.median(rss_mb[:tenth])) if rss_mb.size else float("nan")
    final = float(np.median(rss_mb[-tenth:])) if rss_mb.size else float("nan")
    growth = (final - baseline) / baseline * 100 if rss_mb.size else float("nan")
    age = _percentiles(ages_ms)
    interval = _percentiles(intervals_ms)
    age_bound_ms = settings.max_input_age * 1e3 + interval["max"]
    n_sent = sum(len(v) for v in record.sent.values())
    n_received = sum(len(v) for v in received.values())
    results = {
        "settings": asdict(settings),
        "frames_sent": n_sent,
        "late_publishes": record.late_publishes,
        "node_frames_in": int(diag.get("frames_in", -1)),
        "node_processed": int(diag.get("frames_processed", -1)),
        "node_dropped_stale": int(diag.get("frames_dropped_stale", -1)),
        "node_dropped_superseded": int(diag.get("frames_dropped_superseded", -1)),
        "node_rejected": int(diag.get("frames_rejected", -1)),
        "node_errors": int(diag.get("frames_errors", -1)),
        "outputs_received": n_received,
        "outputs_invalid_stamp": invalid,
        "outputs_incomplete": incomplete,
        "end_to_end_ms": age,
        "output_interval_ms": interval,
        "age_bound_ms": age_bound_ms,
        "node_inference_ms": {q: float(diag.get(f"inference_{q}_ms", "nan"))
                              for q in ("p50", "p95")},
        "node_overhead_ms": {q: float(diag.get(f"overhead_{q}_ms", "nan"))
                             for q in ("p50", "p95")},
        "rss_mb": {"baseline": baseline, "final": final,
                   "max": float(rss_mb.max()) if rss_mb.size else float("nan"),
                   "growth_pct": growth},
        "threads": [int(after[:, 2].min()), int(after[:, 2].max())] if len(after) else [],
        "fds": [int(after[:, 3].min()), int(after[:, 3].max())] if len(after) else [],
        "samples": len(samples),
        "node_alive": record.node_alive,
    }
    results["goals"] = {
        "no_crash": record.node_alive and diag.get("frames_errors") == "0",
        "rss_growth_below_5pct": bool(growth < 5.0),
        "every_output_valid_stamp": invalid == 0 and n_received > 0,
        "outputs_complete": incomplete == 0,
        "frame_age_bounded": bool(age["max"] <= age_bound_ms),
    }
    return results


def soak(settings: SoakSettings, workdir: Path, model: Path | None = None,
         progress: bool = True) -> dict:
    """Export (unless ``model``), start the node, drive it, stop it; ``analyse``'s dict plus
    the node's exit code and log path."""
    import rclpy

    model = model or export_model(workdir, settings.net_size)
    log = workdir / "node.log"
    process = start_node(model, log, settings.cameras, max_input_age=settings.max_input_age,
                         diagnostics_period=1.0)
    rclpy.init()
    driver = None
    try:
        driver = Driver(settings, process.pid)
        try:
            driver.wait_ready()
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}; node log:\n{log.read_text()}") from exc
        record = driver.run(progress)
    finally:
        if driver is not None:
            driver.close()
        rclpy.shutdown()
        process.send_signal(2)  # SIGINT: the node's clean shutdown path
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
    results = analyse(record, settings)
    results["node_exit_code"] = code
    results["node_log"] = str(log)
    results["goals"]["clean_exit"] = code == 0
    return results


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    cpu = platform.processor() or platform.machine()
    return (f"{platform.node()}: {os.cpu_count()} CPU cores ({cpu}), {memory:.1f} GiB RAM, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def markdown(results: dict, title: str, command: str) -> str:
    """A Markdown block of the figures, with the command, the machine and the date."""
    s = results["settings"]
    e2e, iv = results["end_to_end_ms"], results["output_interval_ms"]
    rss = results["rss_mb"]
    goals = "; ".join(f"{k}: {'PASS' if v else 'FAIL'}" for k, v in results["goals"].items())
    return "\n".join([
        f"### {title}",
        "",
        f"- command: `{command}`",
        f"- machine: {machine()}",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- input: {len(s['cameras'])} camera(s) x {s['rate']:g} Hz rgb8 "
        f"{s['image'][1]}x{s['image'][0]}, {s['duration']:g} s (warm-up {s['warmup']:g} s); "
        f"student ResNet-18/16ch at {s['net_size'][1]}x{s['net_size'][0]}, ONNX Runtime CPU; "
        f"max_input_age {s['max_input_age']:g} s",
        "",
        "| figure | value |",
        "|---|---|",
        f"| frames sent / received by node | {results['frames_sent']} / "
        f"{results['node_frames_in']} (late publishes skipped: {results['late_publishes']}) |",
        f"| processed / superseded / stale / rejected / errors | {results['node_processed']} / "
        f"{results['node_dropped_superseded']} / {results['node_dropped_stale']} / "
        f"{results['node_rejected']} / {results['node_errors']} |",
        f"| outputs received (frames) / invalid stamp / incomplete | "
        f"{results['outputs_received']} / {results['outputs_invalid_stamp']} / "
        f"{results['outputs_incomplete']} |",
        f"| end-to-end ms (stamp -> received) p50 / p95 / p99 / max | {e2e['p50']:.1f} / "
        f"{e2e['p95']:.1f} / {e2e['p99']:.1f} / {e2e['max']:.1f} (bound "
        f"{results['age_bound_ms']:.1f}) |",
        f"| output interval per camera ms p50 / p95 / max | {iv['p50']:.1f} / {iv['p95']:.1f} "
        f"/ {iv['max']:.1f} |",
        f"| node inference ms p50 / p95 (last 300) | {results['node_inference_ms']['p50']:.1f}"
        f" / {results['node_inference_ms']['p95']:.1f} |",
        f"| node overhead ms p50 / p95 (last 300) | {results['node_overhead_ms']['p50']:.1f} "
        f"/ {results['node_overhead_ms']['p95']:.1f} |",
        f"| RSS MiB after warm-up: baseline / final / max / growth | {rss['baseline']:.1f} / "
        f"{rss['final']:.1f} / {rss['max']:.1f} / {rss['growth_pct']:+.2f} % |",
        f"| threads min-max / open fds min-max | {results['threads']} / {results['fds']} |",
        f"| node exit code | {results['node_exit_code']} |",
        "",
        f"Goals: {goals}",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the Markdown block here as well")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of input")
    parser.add_argument("--warmup", type=float, default=60.0,
                        help="seconds excluded from the RSS growth")
    parser.add_argument("--cameras", default="front,left")
    parser.add_argument("--rate", type=float, default=30.0, help="Hz per camera")
    parser.add_argument("--image", type=image_size, default=(512, 1024), help="HxW of the frames")
    parser.add_argument("--net-size", type=image_size, default=(128, 256),
                        help="HxW of the student's input")
    parser.add_argument("--max-input-age", type=float, default=0.5)
    parser.add_argument("--model", type=Path, help="use this ONNX instead of a tiny export")
    args = parser.parse_args(argv)
    settings = SoakSettings(duration=args.duration, warmup=args.warmup,
                            cameras=tuple(args.cameras.split(",")), rate=args.rate,
                            image=args.image, net_size=args.net_size,
                            max_input_age=args.max_input_age)
    with tempfile.TemporaryDirectory(prefix="dudes_soak_") as tmp:
        results = soak(settings, Path(tmp), args.model)
        text = markdown(results, "Soak: dudes_node under continuous multi-camera input",
                        "python benchmarks/soak_node.py " + " ".join(argv or sys.argv[1:]))
        if results["node_exit_code"] != 0:
            text += "\nNode log tail:\n\n```\n" + "".join(
                Path(results["node_log"]).read_text().splitlines(True)[-20:]) + "```\n"
    emit(text, args.out)
    return 0 if all(results["goals"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
