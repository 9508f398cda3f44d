"""What a bag run did: frames and rejections per topic, latency, OOD alarm intervals, timeline.

``RunRecorder`` collects per-frame facts (and the bytes written) while a bag is processed;
``summary()`` turns them into a JSON-ready dict, ``format_bag_summary`` into the text printed at
the end, and
``write_timeline`` into a PNG of each camera's OOD score over bag time with the frame
threshold and the alarm intervals shaded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dudes_ros.ood import runs
from dudes_ros.perception import FrameResult, OodConfig

NS = 1e-9
MB = 1e6


def format_bytes(n: float) -> str:
    """``5530000`` -> ``"5.53 MB"``, ``1234`` -> ``"1.2 kB"``, ``412`` -> ``"412 B"``."""
    if n >= MB:
        return f"{n / MB:.2f} MB"
    return f"{n / 1e3:.1f} kB" if n >= 1e3 else f"{n:.0f} B"


def synthetic_model_warning(trained_on: dict) -> str | None:
    """The one-line warning for a model that never saw a real camera image (``trained_on``
    as ``runtime.manifest.trained_on`` gives it), else None."""
    if trained_on.get("real_images"):
        return None
    seen = ("only synthetic street scenes" if trained_on.get("dataset") == "synthetic"
            else f"no real camera image that its manifest knows of ({trained_on.get('dataset')})")
    return (f"warning: this model has seen {seen}; expect wrong classes on real camera "
            "images. For real images train a student on Cityscapes (README, \"From Cityscapes "
            "to the car\"), export it and pass it with --model STUDENT.onnx")


@dataclass
class TopicRecord:
    """Per input topic: processed frames, rejections, and the OOD series in bag time."""

    topic: str
    camera: str
    messages: int = 0
    rejected: Counter = field(default_factory=Counter)
    rejection_examples: dict[str, str] = field(default_factory=dict)
    times_ns: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    alarms: list[bool] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return len(self.times_ns)


def alarm_intervals(times_ns: list[int], alarms: list[bool]) -> list[tuple[int, int, bool]]:
    """``[(start_ns, end_ns, open)]``: from the first frame with the alarm raised to the first
    frame with it cleared; an alarm still raised at the end runs to the last frame (open)."""
    return [(times_ns[start], times_ns[min(end, len(times_ns) - 1)], end == len(times_ns))
            for start, end in runs(alarms)]


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None}
    array = np.asarray(values, dtype=np.float64)
    return {"p50": round(float(np.percentile(array, 50)), 3),
            "p95": round(float(np.percentile(array, 95)), 3),
            "max": round(float(array.max()), 3)}


class RunRecorder:
    """Collects what happened to every image message of a ``process-bag`` run."""

    def __init__(self, topics: dict[str, str], ood: OodConfig, bag_start_ns: int) -> None:
        """``topics``: ``{input topic: camera name}``."""
        self.records = {t: TopicRecord(t, camera) for t, camera in topics.items()}
        self.ood = ood
        self.bag_start_ns = bag_start_ns
        self.latency_ms: list[float] = []
        self.inference_ms: list[float] = []
        self.output_bytes: Counter = Counter()  # output name -> serialized bytes written
        self.copied_bytes: Counter = Counter()  # copied input topic -> bytes written

    def written(self, name: str, nbytes: int) -> None:
        """``nbytes`` of serialized output ``name`` (an ``OUTPUT_TOPICS`` key) were written."""
        self.output_bytes[name] += nbytes

    def copied(self, topic: str, nbytes: int) -> None:
        """``nbytes`` of the input topic ``topic`` were copied into the output bag."""
        self.copied_bytes[topic] += nbytes

    def frame(self, topic: str, timestamp: int, result: FrameResult, latency_ms: float) -> None:
        record = self.records[topic]
        record.messages += 1
        record.times_ns.append(timestamp)
        record.scores.append(result.ood_score)
        record.alarms.append(result.alarm)
        self.latency_ms.append(latency_ms)
        self.inference_ms.append(result.inference_ms)

    def reject(self, topic: str, reason: str, message: str) -> None:
        record = self.records[topic]
        record.messages += 1
        record.rejected[reason] += 1
        record.rejection_examples.setdefault(reason, message)

    def size_summary(self, frames: int, disk_bytes: int | None) -> dict:
        """Bytes written per processed frame: all outputs, each output, the copied inputs,
        and the whole bag on disk (storage overhead and copied inputs included)."""
        def per_frame(n: float) -> float | None:
            return round(n / frames, 1) if frames else None

        outputs = sum(self.output_bytes.values())
        copied = sum(self.copied_bytes.values())
        return {"output_bytes": outputs, "output_bytes_per_frame": per_frame(outputs),
                "per_output_bytes_per_frame": {k: per_frame(v)
                                               for k, v in self.output_bytes.items()},
                "copied_input_bytes": copied,
                "copied_input_bytes_per_frame": per_frame(copied),
                "bag_bytes_on_disk": disk_bytes,
                "bag_bytes_per_frame_on_disk": (per_frame(disk_bytes) if disk_bytes is not None
                                                else None)}

    def summary(self, wall_s: float, disk_bytes: int | None = None) -> dict:
        """JSON-ready run summary; times in bag time (ns and seconds since the bag start);
        ``disk_bytes``: the size of the written bag."""
        frames = sum(r.frames for r in self.records.values())
        inference_s = sum(self.inference_ms) / 1e3
        topics = {}
        intervals = {}
        for record in self.records.values():
            topics[record.topic] = {
                "camera": record.camera,
                "messages": record.messages,
                "frames": record.frames,
                "rejected": dict(record.rejected),
                "rejection_examples": record.rejection_examples,
            }
            intervals[record.topic] = [
                {"start_ns": start, "end_ns": end, "open": is_open,
                 "start_s": round((start - self.bag_start_ns) * NS, 6),
                 "end_s": round((end - self.bag_start_ns) * NS, 6)}
                for start, end, is_open in alarm_intervals(record.times_ns, record.alarms)]
        return {
            "frames": frames,
            "rejected": sum(sum(r.rejected.values()) for r in self.records.values()),
            "topics": topics,
            "ood": {"pixel_threshold": self.ood.pixel_threshold,
                    "frame_threshold": self.ood.frame_threshold,
                    "raise_after": self.ood.raise_after, "clear_after": self.ood.clear_after},
            "bag_start_ns": self.bag_start_ns,
            "alarm_intervals": intervals,
            "latency_ms": _percentiles(self.latency_ms),
            "inference_ms": _percentiles(self.inference_ms),
            "wall_s": round(wall_s, 3),
            "fps": round(frames / wall_s, 3) if wall_s > 0 else 0.0,
            "inference_s": round(inference_s, 3),
            "outside_inference_share": round(1.0 - inference_s / wall_s, 4) if wall_s > 0
            else 0.0,
            "size": self.size_summary(frames, disk_bytes),
        }

    def write_timeline(self, path: Path) -> None:
        """PNG of the OOD score per camera over bag time, threshold and alarm intervals."""
        from dudes_ros.plots import pyplot

        plt = pyplot()

        records = list(self.records.values())
        fig, axes = plt.subplots(len(records), 1, sharex=True, squeeze=False,
                                 figsize=(10, 2.2 * len(records) + 0.8))
        for ax, record in zip(axes[:, 0], records, strict=True):
            t = (np.asarray(record.times_ns, dtype=np.int64) - self.bag_start_ns) * NS
            ax.plot(t, record.scores, lw=1.2, color="tab:blue", label="OOD score")
            ax.axhline(self.ood.frame_threshold, color="tab:red", ls="--", lw=1,
                       label=f"threshold {self.ood.frame_threshold:g}")
            for i, (start, end, _) in enumerate(alarm_intervals(record.times_ns,
                                                                record.alarms)):
                ax.axvspan((start - self.bag_start_ns) * NS, (end - self.bag_start_ns) * NS,
                           color="tab:orange", alpha=0.3, label="alarm" if i == 0 else None)
            ax.set_ylim(0.0, max(1e-3, self.ood.frame_threshold * 1.5,
                                 max(record.scores, default=0.0) * 1.1))
            ax.set_ylabel("uncertain fraction")
            ax.set_title(f"{record.topic} ({record.frames} frames)", fontsize=9)
            ax.legend(loc="best", fontsize=7)
        axes[-1, 0].set_xlabel("bag time since start [s]")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)


def format_bag_summary(summary: dict) -> str:
    """Human-readable lines of a ``RunRecorder.summary()`` (with ``process_bag``'s
    ``trained_on`` and ``warnings`` when present)."""
    lines = []
    if "trained_on" in summary:
        lines.append(f"model trained on: {summary['trained_on']['dataset']} "
                     f"({summary['trained_on']['description']})")
    lines += summary.get("warnings", [])
    lines += [f"processed {summary['frames']} frames, rejected {summary['rejected']} in "
             f"{summary['wall_s']:.2f} s ({summary['fps']:.2f} frames/s; "
             f"{100 * summary['outside_inference_share']:.1f} % outside inference)"]
    for topic, info in summary["topics"].items():
        rejected = ", ".join(f"{k}: {v}" for k, v in info["rejected"].items()) or "none"
        lines.append(f"  {topic} [{info['camera']}]: {info['frames']}/{info['messages']} "
                     f"frames, rejected: {rejected}")
        for reason, example in info["rejection_examples"].items():
            lines.append(f"    {reason}: {example}")
    lat, inf = summary["latency_ms"], summary["inference_ms"]
    lines.append(f"  latency per frame p50 {lat['p50']} ms, p95 {lat['p95']} ms; inference "
                 f"p50 {inf['p50']} ms, p95 {inf['p95']} ms")
    for topic, intervals in summary["alarm_intervals"].items():
        spans = ", ".join(f"{i['start_s']:.3f}-{i['end_s']:.3f} s" + (" (open)" if i["open"]
                                                                       else "")
                          for i in intervals) or "none"
        lines.append(f"  OOD alarms on {topic}: {spans}")
    size = summary.get("size")
    if size and size["output_bytes_per_frame"] is not None:
        parts = ", ".join(f"{name} {format_bytes(v)}"
                          for name, v in size["per_output_bytes_per_frame"].items())
        line = (f"  written per frame: outputs {format_bytes(size['output_bytes_per_frame'])} "
                f"({parts})")
        if size["copied_input_bytes"]:
            line += f", copied inputs {format_bytes(size['copied_input_bytes_per_frame'])}"
        if size["bag_bytes_per_frame_on_disk"] is not None:
            line += f"; bag on disk {format_bytes(size['bag_bytes_per_frame_on_disk'])} per frame"
        lines.append(line)
    return "\n".join(lines)
