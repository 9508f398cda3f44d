"""Publishing an output image: rclpy ``bytes`` vs ``CdrPublisher`` (rcl from a kept buffer).

    python benchmarks/bench_publish.py --out /tmp/bench_publish.md [--messages 100]

One process publishes ``sensor_msgs/Image`` 32FC1 messages of several sizes (the node's
uncertainty output is 1024x512 = 2 MiB), each stamped just before it is built; a subscriber in
a second process takes them with rcl and records the middleware's ``received_timestamp``. The
two ways to publish alternate message by message, each first half the time: ``rclpy``, the bytes of
``Typestore.serialize_cdr`` through ``Publisher.publish`` (the node's way until 2026-11-29),
and ``CdrPublisher``. Reported per way and size: p50/p95 of the publish call (building,
encoding and publishing) and of stamp -> received by the subscriber's middleware.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.soak_node import emit, machine  # noqa: E402 - sets the ROS env first
from dudes_ros.messages.types import IMAGE, OUTPUT_TYPESTORE, stamp_ns  # noqa: E402

ROWS = (1, 128, 512)  # image heights at width 1024, 32FC1: 4 KiB, 512 KiB, 2 MiB
WAYS = ("rclpy", "CdrPublisher")
TOPIC = "bench_publish/image"


def _qos():
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def subscribe(count: int, out: Path) -> None:
    """The subscriber process: take ``count`` messages, write ``[[frame_id, ms], ...]``."""
    import rclpy
    from rosbags.typesys import get_typestore
    from sensor_msgs.msg import Image

    store = get_typestore(OUTPUT_TYPESTORE)
    latencies = []

    def received(raw: bytes, info: dict) -> None:  # its delay does not move received_timestamp
        header = store.deserialize_cdr(memoryview(raw), IMAGE).header
        stamp = stamp_ns(header)
        latencies.append((header.frame_id, (info["received_timestamp"] - stamp) * 1e-6))

    rclpy.init()
    node = rclpy.create_node("bench_publish_subscriber")
    node.create_subscription(Image, TOPIC, received, _qos(), raw=True)
    deadline = time.monotonic() + 60 + count
    while len(latencies) < count and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=1.0)
    out.write_text(json.dumps(latencies))
    node.destroy_node()
    rclpy.shutdown()


def publish(messages: int, workdir: Path) -> dict:
    """Publish ``messages`` per way and size, alternating; percentiles per (way, rows)."""
    import rclpy
    from rosbags.typesys import get_typestore
    from sensor_msgs.msg import Image
    from tqdm import tqdm

    from dudes_ros.messages.conversions import array_to_image_fields
    from dudes_ros.ros.cdr_publisher import CdrPublisher

    store = get_typestore(OUTPUT_TYPESTORE)
    types = store.types
    received = workdir / "received.json"
    total = messages * len(ROWS) * len(WAYS)
    subscriber = subprocess.Popen([sys.executable, __file__, "--subscribe", str(total),
                                   "--received", str(received)])
    rclpy.init()
    node = rclpy.create_node("bench_publish_publisher")
    publisher = CdrPublisher(node.create_publisher(Image, TOPIC, _qos()), store, IMAGE)
    uncertainty = np.random.default_rng(0).random((max(ROWS), 1024), dtype=np.float32)
    calls: dict[tuple[str, int], list[float]] = {(w, r): [] for w in WAYS for r in ROWS}
    try:
        while publisher.publisher.get_subscription_count() == 0:
            time.sleep(0.05)
        time.sleep(1.0)
        for i in tqdm(range(messages), desc="publish"):
            for rows in ROWS:
                for way in WAYS[::-1] if i % 2 else WAYS:  # each goes first half the time
                    start = time.perf_counter()
                    sec, nanosec = divmod(time.time_ns(), 1_000_000_000)
                    header = types["std_msgs/msg/Header"](
                        stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                        frame_id=f"{way}:{rows}:{i}")
                    message = types[IMAGE](header=header, **array_to_image_fields(
                        uncertainty[:rows], "32FC1"))
                    if way == "rclpy":
                        publisher.publisher.publish(bytes(store.serialize_cdr(message, IMAGE)))
                    else:
                        publisher.publish(message)
                    calls[(way, rows)].append((time.perf_counter() - start) * 1e3)
                    time.sleep(0.02)  # as between a node's frames: caches and pages go cold
        subscriber.wait(timeout=120)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        if subscriber.poll() is None:
            subscriber.kill()
    arrived: dict[tuple[str, int], list[float]] = {key: [] for key in calls}
    for frame_id, ms in json.loads(received.read_text()):
        way, rows, _ = frame_id.split(":")
        arrived[(way, int(rows))].append(ms)
    return {"messages": messages, "via": publisher.via, "rows": [
        {"way": way, "kib": rows * 4, "received": len(arrived[(way, rows)]),
         **{f"call_p{q}": float(np.percentile(calls[(way, rows)], q)) for q in (50, 95)},
         **{f"arrival_p{q}": float(np.percentile(arrived[(way, rows)], q)) for q in (50, 95)}}
        for rows in ROWS for way in WAYS]}


def markdown(result: dict, command: str) -> str:
    rows = [f"| {r['kib']} KiB | {r['way']} | {r['call_p50']:.2f} / {r['call_p95']:.2f} | "
            f"{r['arrival_p50']:.2f} / {r['arrival_p95']:.2f} | {r['received']} |"
            for r in result["rows"]]
    return "\n".join([
        "### Publishing an image: rclpy bytes vs CdrPublisher (`benchmarks/bench_publish.py`)",
        "",
        f"- command: `{command}`",
        f"- machine: {machine()}",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- {result['messages']} messages per way and size, alternated; 32FC1 rows of 1024 "
        f"pixels; CdrPublisher via {result['via']}",
        "",
        "| message | way | publish call ms p50 / p95 | stamp -> subscriber's middleware ms "
        "p50 / p95 | received |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the Markdown block here as well")
    parser.add_argument("--messages", type=int, default=100, help="per way and size")
    parser.add_argument("--subscribe", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--received", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.subscribe:
        subscribe(args.subscribe, args.received)
        return 0
    import tempfile

    command = "python benchmarks/bench_publish.py " + " ".join(argv or sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="dudes_bench_publish_") as tmp:
        text = markdown(publish(args.messages, Path(tmp)), command)
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
