"""What the node tells its user, in words: where each camera's frames come from and why none
arrive, what the model was trained on, and the /diagnostics level that sums it up.

A user who wires the input wrongly (a raw ``Image`` subscription remapped onto a
``CompressedImage`` topic, a base topic without ``transport:=compressed``, no remapping at all)
gets no frame and, before this module, no word either. ``InputWatch`` watches each camera's
input: it gathers what the ROS graph shows on and around the subscribed topic (publishers,
their types and reliability, other camera topics) and ``input_problem`` turns those facts into
one sentence with the fix. The wording functions take plain data, so tests check them without
a ROS graph. ``diagnostics`` holds the counters and assembles the /diagnostics status around
``level_and_message``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dudes_ros.messages.types import COMPRESSED_IMAGE, IMAGE, IMAGE_TYPES

MAX_LISTED_TOPICS = 5  # camera topics named in a hint; a big graph would drown the message
README_TRAINING = 'README section "From Cityscapes to the car"'


@dataclass(frozen=True)
class Input:
    """One camera's input as subscribed: ``relative`` is the name before remapping (``image``,
    ``front/image``), ``topic`` the fully resolved name read with ``msgtype``."""

    camera: str
    relative: str
    topic: str
    msgtype: str

    def describe(self) -> str:
        return f"{self.topic} ({self.msgtype})"


def input_line(inp: Input, transport: str, base: str) -> str:
    """The activation log line of one input, e.g. ``input: /camera/image_raw/compressed
    (sensor_msgs/msg/CompressedImage); transport compressed, base topic image ->
    /camera/image_raw``."""
    who = f"input of camera {inp.camera!r}" if inp.camera else "input"
    return (f"{who}: {inp.describe()}; transport {transport}, base topic {inp.relative} -> "
            f"{base}")


@dataclass(frozen=True)
class Publisher:
    """A publisher the graph shows: its node (fully qualified), type and reliability."""

    node: str
    msgtype: str
    reliable: bool


@dataclass(frozen=True)
class Problem:
    """What is wrong with one input: ``text`` for the user, ``key`` the same without the
    seconds that change every tick (the log repeats a problem only when its key changes)."""

    key: str
    text: str


def fix_for(inp: Input, topic: str, msgtype: str) -> str:
    """The parameters and remapping that make ``inp`` read ``topic`` of ``msgtype``."""
    if msgtype == COMPRESSED_IMAGE:
        if topic.endswith("/compressed"):
            return (f"set transport:=compressed and remap the base topic: -p transport:="
                    f"compressed -r {inp.relative}:={topic.removesuffix('/compressed')}")
        return (f"set transport:=compressed and remap the compressed topic itself: -p "
                f"transport:=compressed -r {inp.relative}/compressed:={topic}")
    if msgtype == IMAGE:
        return f"set transport:=raw and remap: -p transport:=raw -r {inp.relative}:={topic}"
    return f"remap {inp.relative} to a topic of {IMAGE} or {COMPRESSED_IMAGE}"


def input_problem(inp: Input, publishers: list[Publisher], silent_s: float, timeout: float,
                  reliable: bool, camera_topics: dict[str, str]) -> Problem | None:
    """Why ``inp`` gets nothing, or None while all is well.

    ``publishers``: those of ``inp.topic``; ``silent_s``: seconds since its last frame (or
    since activation); ``timeout``: ``input_timeout`` (0 = never silent); ``reliable``: the
    subscription's reliability; ``camera_topics``: ``{topic: type}`` of other topics published
    with an image type, for a hint. Publishers of another type are a problem at once (they can
    never deliver); silence only after ``timeout``."""
    foreign = sorted({p.msgtype for p in publishers if p.msgtype != inp.msgtype})
    silent = timeout > 0 and silent_s > timeout
    head = f"no frames received on {inp.describe()} for {silent_s:.0f} s: " if silent else ""
    if foreign:
        detail = (f"publishers of {inp.topic} carry {', '.join(foreign)}; this node subscribes "
                  f"{inp.msgtype} ({fix_for(inp, inp.topic, foreign[0])})")
        return Problem(f"{inp.topic}: {detail}", head + detail)
    if not silent:
        return None
    if not publishers:
        detail = f"no publisher on {inp.topic}"
        if camera_topics:  # the likeliest first: the longest common start with the topic read
            listed = sorted(camera_topics.items(), key=lambda item: (
                -len(os.path.commonprefix([item[0], inp.topic])), item[0]))[:MAX_LISTED_TOPICS]
            topic, msgtype = listed[0]
            detail += ("; camera topics published: "
                       + ", ".join(f"{t} ({m})" for t, m in listed)
                       + f"; to read {topic}: {fix_for(inp, topic, msgtype)}")
        else:
            detail += ("; no camera topic is published that this node can see (same "
                       "ROS_DOMAIN_ID and ROS_AUTOMATIC_DISCOVERY_RANGE as the camera?)")
    elif reliable and not any(p.reliable for p in publishers):
        detail = (f"its publishers ({_nodes(publishers)}) are best effort and this node "
                  "subscribes reliable, so they never match (qos.reliability:=best_effort)")
    else:
        detail = (f"{len(publishers)} publisher(s) ({_nodes(publishers)}) of the right type sent "
                  "nothing that arrived: are they publishing? (large images over Fast DDS: "
                  'README "Large images over Fast DDS")')
    return Problem(f"{inp.topic}: {detail}", head + detail)


def _nodes(publishers: list[Publisher]) -> str:
    return ", ".join(sorted({p.node for p in publishers}))


class InputWatch:
    """Each camera's input: when its last frame arrived (the worker calls ``arrived``) and
    what the graph shows about it (``problems``, on the executor thread)."""

    def __init__(self, node: Any, inputs: Iterable[Input], reliable: bool) -> None:
        self.node = node
        self.inputs = {inp.camera: inp for inp in inputs}
        self.reliable = reliable
        now = time.monotonic()
        self._last = dict.fromkeys(self.inputs, now)  # activation counts as the last frame
        self._logged: dict[str, str] = {}  # camera -> key of the problem last logged

    def arrived(self, cameras: Iterable[str]) -> None:
        now = time.monotonic()
        for camera in cameras:
            self._last[camera] = now  # one key each: safe against the timer's reads

    def problems(self, timeout: float) -> list[str]:
        """The problem of every camera that has one; each new one is logged once as a
        warning, and its end as info."""
        found = []
        log = self.node.get_logger()
        for camera, inp in self.inputs.items():
            publishers = self._publishers(inp.topic)
            silent_s = time.monotonic() - self._last[camera]
            problem = input_problem(
                inp, publishers, silent_s, timeout, self.reliable,
                self._camera_topics(inp) if not publishers and timeout > 0
                and silent_s > timeout else {})
            if problem is None:
                if camera in self._logged:
                    del self._logged[camera]
                    log.info(f"input {inp.describe()}: frames arrive")
                continue
            found.append(problem.text)
            if self._logged.get(camera) != problem.key:
                self._logged[camera] = problem.key
                log.warning(problem.text)
        return found

    def _publishers(self, topic: str) -> list[Publisher]:
        from rclpy.qos import ReliabilityPolicy

        return [Publisher(_qualified(info.node_namespace, info.node_name), info.topic_type,
                          info.qos_profile.reliability == ReliabilityPolicy.RELIABLE)
                for info in self.node.get_publishers_info_by_topic(topic)]

    def _camera_topics(self, inp: Input) -> dict[str, str]:
        """``{topic: image type}`` of topics another node publishes with an image type."""
        me = self.node.get_fully_qualified_name()
        found = {}
        for topic, types in self.node.get_topic_names_and_types():
            kinds = [t for t in types if t in IMAGE_TYPES]
            if topic != inp.topic and kinds and any(
                    p.node != me for p in self._publishers(topic)):
                found[topic] = kinds[0]
        return found


def _qualified(namespace: str, name: str) -> str:
    return f"{namespace.rstrip('/')}/{name}"


# --- the model ------------------------------------------------------------------------------

def trained_on_text(trained: dict) -> str:
    """One line: dataset, description and whether it saw real camera images."""
    real = {True: "yes", False: "no"}.get(trained.get("real_images"), "unknown")
    return f"{trained['dataset']}: {trained['description']} (real camera images: {real})"


def synthetic_warning(trained: dict, model: Path) -> str | None:
    """The warning for a model that never saw a real camera image, else None."""
    if trained.get("real_images") is not False:
        return None
    return (f"model {model} has seen only synthetic street scenes, never a real camera image: "
            "on real camera images expect wrong classes, and uncertainty and OOD alarms that "
            "do not mean what they mean on its own data. Train on real images (Cityscapes, or "
            "your own in its layout) and drop that model in with model:=/path/to/student.onnx; "
            f"see the {README_TRAINING}")


# --- the /diagnostics level -----------------------------------------------------------------

def level_and_message(failure: str | None, state: str, input_problems: list[str],
                      recent: tuple[int, dict[str, int]], max_input_age: float
                      ) -> tuple[str, str]:
    """ERROR after a failed transition (with the reason); WARN while not active, while an
    input has a problem (``InputWatch.problems``) or another is named in ``input_problems``
    (a CPU fallback on a GPU machine), or while the last ``n`` taken frames
    (``recent = (n, outcome counts)``) hold a rejected or failed one or are mostly dropped as
    stale; else OK, "streaming"."""
    if failure:
        return "error", failure
    if state != "active":
        return "warn", state
    if input_problems:
        return "warn", "; ".join(input_problems)
    n, outcomes = recent
    if outcomes["rejected"] or outcomes["errors"]:
        return "warn", (f"{outcomes['rejected']} rejected and {outcomes['errors']} failed of "
                        f"the last {n} frames (see values)")
    if outcomes["dropped_stale"] * 2 > n:
        return "warn", (f"{outcomes['dropped_stale']} of the last {n} frames dropped as stale "
                        f"(header stamp older than max_input_age {max_input_age} s)")
    return "ok", "streaming"
