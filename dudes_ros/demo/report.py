"""The demo's numbers and pictures, computed without ROS from what the camera recorded.

``summarize`` turns the per-frame records (and, for the synthetic drive, when the anomaly was in
view) into summary.json: frames in/out, latency percentiles, alarm intervals, when the alarm
rose and cleared relative to the anomaly, and false alarms. ``timeline_png`` draws the OOD score
against the threshold with the alarm, the anomaly in view and the frames with anomaly regions;
``contact_sheet_png`` reads the selected frames back from the recorded bag (so the picture
shows what the bag holds) and draws each frame's region boxes with their ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dudes_ros.labels import colorize
from dudes_ros.ood import runs
from dudes_ros.plots import pyplot

OUTPUTS = ("segmentation", "uncertainty", "confidence", "ood", "ood_alarm", "ood/regions")
"""Output topic suffixes recorded for every frame (the colour images are left lazy)."""

MAX_RISE_DELAY = 5  # frames: the acceptance bound for the alarm after entry


@dataclass
class FrameRecord:
    """One published frame: its header stamp, when it was published and when each output
    arrived (``time.monotonic`` seconds), and what the ``ood`` and ``ood_alarm`` outputs said."""

    index: int
    stamp_ns: int
    height: int
    width: int
    published: float
    received: dict[str, float] = field(default_factory=dict)
    score: float | None = None  # frame OOD score (uncertain-pixel fraction)
    threshold: float | None = None  # frame threshold the node used
    pixel_threshold: float | None = None
    level: int | None = None  # DiagnosticStatus level: 0 OK, 1 WARN, 2 ERROR
    ood_alarm_value: bool | None = None  # the alarm state inside the ood message
    alarm: bool | None = None  # the ood_alarm topic
    regions: list[dict[str, int]] = field(default_factory=list)  # id, x, y, width, height

    def set_ood(self, level: int, values: dict[str, str]) -> None:
        self.level = level
        self.score = float(values["score"])
        self.threshold = float(values["threshold"])
        self.pixel_threshold = float(values["pixel_threshold"])
        self.ood_alarm_value = values["alarm"] == "true"

    def set_regions(self, regions: list[dict[str, str]]) -> None:
        """The ``ood/regions`` statuses' key/values: each region's id and pixel box."""
        self.regions = [{key: int(region[key]) for key in ("id", "x", "y", "width", "height")}
                        for region in regions]

    @property
    def complete(self) -> bool:
        return all(suffix in self.received for suffix in OUTPUTS)

    @property
    def latency_ms(self) -> float | None:
        """Publish to the last output's arrival, ms (None for an incomplete frame)."""
        return (max(self.received.values()) - self.published) * 1e3 if self.complete else None


def _anomaly_section(in_view: Sequence[bool], alarms: list[tuple[int, int]],
                     records: list[FrameRecord], raise_after: int) -> dict:
    """Alarm episodes against the ground truth. An episode that rose while the anomaly was in
    view, or within ``raise_after`` frames after it left (the debounce lags by that much), is
    a detection; every other episode rose on anomaly-free frames and is a false alarm."""
    seen = [i for i, v in enumerate(in_view) if v]
    entered, left = (seen[0], seen[-1] + 1) if seen else (None, None)
    hits = [a for a in alarms if seen and entered <= a[0] < left + raise_after]
    false = [a for a in alarms if a not in hits]
    rose = hits[0][0] if hits else None
    cleared = hits[-1][1] if hits and hits[-1][1] < len(in_view) else None
    over_free = sum(1 for r in records if not in_view[r.index] and r.score is not None
                    and r.threshold is not None and r.score > r.threshold)
    regions_in_view = [r.index for r in records if in_view[r.index] and r.regions]
    return {
        "entered_frame": entered,
        "left_frame": left,
        "frames_in_view": len(seen),
        "alarm_rose_frame": rose,
        "alarm_cleared_frame": cleared,
        "rise_delay_frames": None if rose is None else rose - entered,
        "clear_delay_frames": None if cleared is None else cleared - left,
        "detection_episodes": len(hits),
        "false_alarms": len(false),
        "false_alarm_frames": sum(1 for s, e in false for i in range(s, e) if not in_view[i]),
        "false_alarm_intervals": [list(a) for a in false],
        "anomaly_free_frames_over_threshold": over_free,
        "first_region_frame": regions_in_view[0] if regions_in_view else None,
        "frames_in_view_with_region": len(regions_in_view),
        "regions_on_anomaly_free_frames": sum(len(r.regions) for r in records
                                              if not in_view[r.index]),
    }


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def summarize(records: list[FrameRecord], in_view: Sequence[bool] | None,
              raise_after: int) -> dict:
    """The summary.json numbers (see docs/demo.md for each key); ``raise_after``
    is the alarm's debounce (frames over threshold before it rises)."""
    latencies = [r.latency_ms for r in records if r.complete]
    alarms = runs([r.alarm is True for r in records])
    summary = {
        "frames_in": len(records),
        "frames_out": len(latencies),
        "frames_lost": len(records) - len(latencies),
        "latency_ms": {"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95),
                       "max": _percentile(latencies, 100)},
        "alarm_intervals": [list(a) for a in alarms],
        "anomaly": None,
        "checks": None,
        "frames": [{"index": r.index, "stamp_ns": r.stamp_ns, "score": r.score,
                    "threshold": r.threshold, "alarm": r.alarm, "level": r.level,
                    "in_view": None if in_view is None else bool(in_view[r.index]),
                    "regions": r.regions,
                    "latency_ms": None if r.latency_ms is None else round(r.latency_ms, 2)}
                   for r in records],
    }
    if in_view is not None:
        anomaly = _anomaly_section(in_view, alarms, records, raise_after)
        delay = anomaly["rise_delay_frames"]
        summary["anomaly"] = anomaly
        summary["checks"] = {
            "alarm_rose_within_5_frames": delay is not None and delay <= MAX_RISE_DELAY,
            "alarm_cleared_after_anomaly_left": (anomaly["alarm_cleared_frame"] is not None
                                                 and anomaly["left_frame"] is not None
                                                 and anomaly["alarm_cleared_frame"]
                                                 >= anomaly["left_frame"]),
            "no_false_alarms": anomaly["false_alarms"] == 0,
        }
    return summary


def format_summary(summary: dict) -> str:
    """The short text ``dudes demo`` prints."""
    lat = summary["latency_ms"]
    lines = [f"frames: {summary['frames_in']} in, {summary['frames_out']} out "
             f"({summary['frames_lost']} lost)",
             f"latency (publish -> last output): p50 {lat['p50']} ms, p95 {lat['p95']} ms"]
    anomaly = summary["anomaly"]
    if anomaly is None:
        intervals = ", ".join(f"{s}-{e - 1}" for s, e in summary["alarm_intervals"]) or "none"
        lines.append(f"alarm raised on frames: {intervals} (no ground truth for this source)")
        return "\n".join(lines)
    if anomaly["entered_frame"] is None:
        lines.append("the anomaly never came into view")
    else:
        lines.append(f"anomaly in view: frames {anomaly['entered_frame']}-"
                     f"{anomaly['left_frame'] - 1} (entered at {anomaly['entered_frame']}, "
                     f"gone from {anomaly['left_frame']})")
        if anomaly["alarm_rose_frame"] is None:
            lines.append("alarm: did not rise for the anomaly")
        else:
            cleared = anomaly["alarm_cleared_frame"]
            lines.append(f"alarm: rose at frame {anomaly['alarm_rose_frame']} "
                         f"({anomaly['rise_delay_frames']:+d} frames after entry), "
                         + ("still raised at the end" if cleared is None else
                            f"cleared at frame {cleared} ({anomaly['clear_delay_frames']:+d} "
                            "frames after it left)"))
        first = anomaly["first_region_frame"]
        lines.append("anomaly regions: " + ("none while in view" if first is None else
                     f"first at frame {first} ({first - anomaly['entered_frame']:+d} frames "
                     f"after entry), on {anomaly['frames_in_view_with_region']} of "
                     f"{anomaly['frames_in_view']} frames in view")
                     + f"; {anomaly['regions_on_anomaly_free_frames']} on anomaly-free frames")
    spans = ", ".join(f"{s}-{e - 1}" for s, e in anomaly["false_alarm_intervals"])
    lines.append(f"false alarms on anomaly-free frames: {anomaly['false_alarms']}"
                 + (f" (frames {spans})" if spans else ""))
    checks = summary["checks"]
    lines.append("checks: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}"
                                        for k, v in checks.items()))
    return "\n".join(lines)


def timeline_png(path: Path, summary: dict, title: str) -> None:
    """OOD score per frame with the frame threshold, the alarm and the anomaly in view."""
    frames = summary["frames"]
    index = [f["index"] for f in frames]
    scores = [np.nan if f["score"] is None else f["score"] for f in frames]
    thresholds = [np.nan if f["threshold"] is None else f["threshold"] for f in frames]
    fig, (ax, bars) = pyplot().subplots(2, 1, figsize=(10, 4.2), sharex=True,
                                   gridspec_kw={"height_ratios": [4, 1]})
    in_view = [f["in_view"] for f in frames]
    view_runs = runs([bool(v) for v in in_view]) if None not in in_view else []
    for start, end in view_runs:
        ax.axvspan(start - 0.5, end - 0.5, color="tab:green", alpha=0.15,
                   label="anomaly in view")
    for start, end in summary["alarm_intervals"]:
        ax.axvspan(start - 0.5, end - 0.5, color="tab:red", alpha=0.12, label="OOD alarm")
    ax.plot(index, scores, "o-", ms=3, color="tab:blue", label="frame OOD score")
    ax.step(index, thresholds, where="mid", color="black", ls="--", lw=1,
            label="frame threshold")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), loc="upper right", fontsize=8)
    ax.set_ylabel("uncertain-pixel fraction")
    top = np.nanmax([*scores, *thresholds, 0.0])
    ax.set_ylim(0.0, max(1.1 * top, 0.01))
    ax.set_title(title, fontsize=10)
    region_runs = runs([bool(f.get("regions")) for f in frames])
    rows = [("anomaly regions", region_runs, "tab:orange"),
            ("OOD alarm", summary["alarm_intervals"], "tab:red")]
    if view_runs:
        rows.insert(0, ("anomaly in view", view_runs, "tab:green"))
    for y, (_, intervals, colour) in enumerate(rows):
        bars.broken_barh([(s - 0.5, e - s) for s, e in intervals], (y - 0.35, 0.7),
                         color=colour)
    bars.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    bars.set_ylim(len(rows) - 0.4, -0.6)  # first row on top
    bars.set_xlabel("frame")
    bars.set_xlim(-0.5, max(index, default=0) + 0.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)


def select_frames(summary: dict, n: int = 6) -> list[int]:
    """About ``n`` processed frames spanning before, during and after the anomaly (or the
    first alarm, without ground truth), in order."""
    done = [f["index"] for f in summary["frames"] if f["latency_ms"] is not None]
    if not done:
        return []
    anomaly = summary["anomaly"] or {}
    entered, left = anomaly.get("entered_frame"), anomaly.get("left_frame")
    if entered is None and summary["alarm_intervals"]:
        entered, left = summary["alarm_intervals"][0]
    last = done[-1]
    if entered is None:
        wanted = list(np.linspace(done[0], last, n))
    else:
        # before: well before and just before; during: halfway and nearly gone (largest
        # in view); after: just after leaving (the alarm may still hold) and the last frame
        wanted = [entered // 2, entered - 1, (entered + left) // 2, left - 2, left + 2, last]
    chosen = sorted({min(done, key=lambda d, w=w: abs(d - w)) for w in wanted})
    for extra in np.linspace(done[0], last, n):  # fill up when targets coincided
        if len(chosen) >= min(n, len(done)):
            break
        chosen = sorted({*chosen, min(done, key=lambda d, w=extra: abs(d - w))})
    return chosen


def read_frames(bag_path: Path, namespace: str,
                stamps: dict[int, int]) -> dict[int, dict[str, np.ndarray]]:
    """``{frame index: {suffix: array}}`` for the image topics of the frames whose header
    stamps are ``stamps`` (``{stamp_ns: index}``), decoded from the recorded bag."""
    from dudes_ros.bag.reader import BagReader
    from dudes_ros.messages.conversions import RECORDED_ENCODINGS, image_to_array

    suffixes = ("image", "segmentation", "uncertainty", "confidence")
    topics = [f"{namespace}/{s}" for s in suffixes]
    found: dict[int, dict[str, np.ndarray]] = {i: {} for i in stamps.values()}
    with BagReader(bag_path) as bag:
        for message in bag.messages(topics):
            if message.timestamp not in stamps:
                continue
            msg = bag.deserialize(message)
            suffix = message.topic.rsplit("/", 1)[1]
            array = image_to_array(msg, encodings=RECORDED_ENCODINGS)  # [H, W, C]
            found[stamps[message.timestamp]][suffix] = (array[..., 0] if array.ndim == 3
                                                        and array.shape[2] == 1 else array)
    return found


def _draw_regions(ax, regions: list[dict[str, int]], shown: tuple[int, int],
                  mask: tuple[int, int]) -> None:
    """Boxes of ``regions`` (in the pixels of ``ood/mask``, whose size is ``mask``, that of
    the other outputs) on ``ax``, which shows an image of size ``shown``."""
    from matplotlib.patches import Rectangle

    sy, sx = shown[0] / mask[0], shown[1] / mask[1]
    for region in regions:
        x, y = region["x"] * sx - 0.5, region["y"] * sy - 0.5
        ax.add_patch(Rectangle((x, y), region["width"] * sx, region["height"] * sy,
                               fill=False, edgecolor="cyan", linewidth=1.2))
        ax.text(x, y - 1, f"#{region['id']}", color="cyan", fontsize=6, va="bottom")


def contact_sheet_png(path: Path, bag_path: Path, namespace: str, summary: dict,
                      n: int = 6) -> list[int]:
    """One row per selected frame: camera | segmentation | uncertainty | confidence, read
    back from the bag, with the frame's anomaly regions boxed (id above each box) on the
    camera and uncertainty panels. Returns the frame indices shown."""
    chosen = select_frames(summary, n)
    frames = {f["index"]: f for f in summary["frames"]}
    images = read_frames(bag_path, namespace, {frames[i]["stamp_ns"]: i for i in chosen})
    h, w = next(iter(images.values()))["image"].shape[:2] if chosen else (1, 1)
    panel_h = 1.6  # inches
    panel_w = panel_h * min(max(w / h, 0.5), 2.5)
    fig, axes = pyplot().subplots(max(len(chosen), 1), 4, squeeze=False,
                             figsize=(4 * panel_w + 1.0, max(len(chosen), 1) * panel_h + 0.6))
    titles = ("camera", "segmentation (trainIds)", "uncertainty u (inferno, 0-1)",
              "confidence (white = certain)")
    for row, index in enumerate(chosen):
        panels = images[index]
        info = frames[index]
        cells = [(panels["image"], {}),
                 (colorize(panels["segmentation"]), {}),
                 (panels["uncertainty"], {"cmap": "inferno", "vmin": 0.0, "vmax": 1.0}),
                 (panels["confidence"], {"cmap": "gray", "vmin": 0, "vmax": 255})]
        for col, (array, style) in enumerate(cells):
            ax = axes[row, col]
            ax.imshow(array, interpolation="nearest", **style)
            if col in (0, 2):
                _draw_regions(ax, info.get("regions", []), array.shape[:2],
                              panels["uncertainty"].shape[:2])
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col], fontsize=8)
        state = [f"frame {index}"]
        if info["in_view"]:
            state.append("anomaly in view")
        if info["score"] is not None:
            state.append(f"score {info['score']:.3f}")
        if info["alarm"]:
            state.append("ALARM")
        axes[row, 0].set_ylabel("\n".join(state), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return chosen
