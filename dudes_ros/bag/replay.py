"""Publish a bag into the live ROS 2 graph at the recorded rate (``replay``; the command line is
``dudes replay BAG``, ``dudes_ros.commands.replay``).

For machines without ``ros2 bag play`` (the package-index ROS wheels have no rosbag2). The
recorded CDR bytes are published without deserializing them (ROS 1 bags are converted to CDR
first). Timing follows the bag's receive times scaled by ``--rate``; ``--start-offset`` skips the
first seconds, ``--loop`` repeats until Ctrl-C.

Header stamps, two ways:

- default: **restamped to now**, so that nodes on the wall clock (``dudes_node`` with its
  default ``max_input_age``) take the frames as live. Every message whose first field is a
  ``std_msgs/Header`` gets ``published = P0 + (recorded - S0) / rate``, where ``S0`` is the
  first such stamp of the pass and ``P0`` the wall time it was published at; at rate 1 that is
  one constant shift per pass, printed as ``published = recorded + D ns`` (the recorded stamp is
  the published one minus ``D``). Relative timing between messages and topics is kept; stamps
  inside other messages (``/tf``) are not changed, so replay those with ``--clock``.
- ``--clock`` (what ``ros2 bag play --clock`` does): stamps are published as recorded and
  ``/clock`` (rosgraph_msgs/Clock) carries bag time, for nodes run with ``use_sim_time:=true``.
  ``--keep-stamps`` publishes the recorded stamps without a clock.

``playback`` is the ROS-free scheduler (publishing goes through callables); ``replay`` wires it
to rclpy, which is imported only there: this is the one bag module that talks to a ROS graph.
"""

from __future__ import annotations

import importlib
import logging
import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rosbags.typesys import get_typestore
from rosbags.typesys.store import Typestore

from dudes_ros.bag.reader import BagError, BagReader, check_ros2_layout, to_ros2_cdr
from dudes_ros.messages.types import OUTPUT_TYPESTORE

LOG = logging.getLogger(__name__)

CLOCK_TOPIC = "/clock"


@dataclass(frozen=True)
class ReplayOptions:
    """Playback settings (defaults = the command line's)."""

    rate: float = 1.0  # speed factor: 2.0 plays twice as fast
    loops: int | None = 1  # number of passes; None: until interrupted
    topics: tuple[str, ...] = ()  # empty: every topic
    start_offset: float = 0.0  # seconds of the bag to skip
    clock_hz: float = 0.0  # /clock publishing rate while waiting; 0: no /clock
    restamp: bool = True  # header stamps moved to now (``Restamp``); False: as recorded

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")
        if self.loops is not None and self.loops < 1:
            raise ValueError(f"loops must be >= 1 or None (forever), got {self.loops}")
        if self.start_offset < 0:
            raise ValueError(f"start_offset must be >= 0 seconds, got {self.start_offset}")
        if self.clock_hz < 0:
            raise ValueError(f"clock_hz must be >= 0 (0: no /clock), got {self.clock_hz}")
        if self.restamp and self.clock_hz > 0:
            raise ValueError("a /clock in bag time needs the recorded header stamps; restamping "
                             "is for nodes on the wall clock (use one or the other)")


@dataclass(frozen=True)
class Restamp:
    """The stamp map of one pass: ``published = published_origin + (recorded -
    recorded_origin) / rate`` (ns); exact and invertible at rate 1."""

    recorded_origin: int
    published_origin: int
    rate: float = 1.0

    def published(self, recorded_ns: int) -> int:
        delta = recorded_ns - self.recorded_origin
        return self.published_origin + (delta if self.rate == 1 else round(delta / self.rate))

    def describe(self) -> str:
        if self.rate == 1:
            return (f"published = recorded {self.published_origin - self.recorded_origin:+d} ns")
        return (f"published = {self.published_origin} + (recorded - {self.recorded_origin}) / "
                f"{self.rate:g} ns")


def has_header(typestore: Typestore, msgtype: str) -> bool:
    """Whether ``msgtype``'s first field is ``header: std_msgs/msg/Header`` (its stamp is then
    the first 8 bytes after the CDR encapsulation header)."""
    fields = typestore.fielddefs.get(msgtype, ((), ()))[1]
    return bool(fields) and fields[0][0] == "header" and fields[0][1][1] == "std_msgs/msg/Header"


def _endian(cdr: bytes | bytearray) -> str:
    return "<" if cdr[1] & 1 else ">"  # encapsulation 0x0001 = little-endian CDR


def header_stamp(cdr: bytes | bytearray) -> int:
    """The header stamp (ns) of a CDR message that starts with a ``std_msgs/Header``."""
    sec, nanosec = struct.unpack_from(_endian(cdr) + "iI", cdr, 4)
    return sec * 1_000_000_000 + nanosec


def with_stamp(cdr: bytes | bytearray, stamp_ns: int) -> bytes:
    """A copy of such a CDR message with its header stamp set to ``stamp_ns`` (>= 0), made in
    one pass over the (image-sized) message."""
    sec, nanosec = divmod(max(stamp_ns, 0), 1_000_000_000)
    view = memoryview(cdr)
    return b"".join((view[:4], struct.pack(_endian(cdr) + "iI", sec, nanosec), view[12:]))


def replay_topics(bag: BagReader, topics: tuple[str, ...]) -> dict[str, str]:
    """``{topic: msgtype}`` to publish, refusing requested topics the bag does not have."""
    available = bag.topics()
    missing = [t for t in topics if t not in available]
    if missing:
        raise BagError(f"{bag.path}: topic(s) {missing} are not in the bag; it has "
                       f"{sorted(available)}")
    chosen = {t: available[t][0] for t in (topics or sorted(available))}
    if not chosen:
        raise BagError(f"{bag.path}: the bag has no topics to replay")
    return chosen


def playback(bag: BagReader, topics: dict[str, str], options: ReplayOptions,
             publish: Callable[[str, bytes, int], None],
             clock: Callable[[int], None] | None = None,
             now: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep,
             wall_ns: Callable[[], int] = time.time_ns,
             restamped: Callable[[Restamp], None] | None = None) -> int:
    """Publish ``topics`` of ``bag`` in bag-time order at the recorded rate.

    ``publish(topic, cdr_bytes, bag_time_ns)`` sends one message; ``clock(bag_time_ns)``, when
    given, is called before every message and every ``1 / options.clock_hz`` s while waiting.
    Message k of a pass is sent at ``pass_start + (t_k - t_0) / rate`` (``t_0`` = bag start +
    offset), so delays do not accumulate. With ``options.restamp`` header stamps go through
    one ``Restamp`` per pass (origin: the first header, at ``wall_ns()`` when it is sent),
    handed to ``restamped`` when it is fixed. Returns the number of messages published.
    """
    typestore = get_typestore(OUTPUT_TYPESTORE)
    for topic, msgtype in topics.items():
        check_ros2_layout(bag, topic, msgtype, typestore)
    stamped = {t for t, msgtype in topics.items() if options.restamp and has_header(
        typestore if bag.is_ros1 else bag.typestore, msgtype)}
    origin = bag.start_time + int(options.start_offset * 1e9)
    tick = 1.0 / options.clock_hz if clock is not None and options.clock_hz > 0 else None
    published = 0
    passes = 0
    while options.loops is None or passes < options.loops:
        pass_start = now()
        sent_this_pass = 0
        stamp_map: Restamp | None = None
        for message in bag.messages(list(topics), start=origin):
            due = pass_start + (message.timestamp - origin) / 1e9 / options.rate
            _wait(due, origin, pass_start, options.rate, clock, tick, now, sleep)
            if clock is not None:
                clock(message.timestamp)
            data = bytes(to_ros2_cdr(bag, message, typestore))
            if message.topic in stamped:
                if stamp_map is None:
                    stamp_map = Restamp(header_stamp(data), wall_ns(), options.rate)
                    if restamped is not None:
                        restamped(stamp_map)
                data = with_stamp(data, stamp_map.published(header_stamp(data)))
            publish(message.topic, data, message.timestamp)
            sent_this_pass += 1
        if sent_this_pass == 0:
            raise BagError(f"{bag.path}: no messages on {sorted(topics)} after the start "
                           f"offset of {options.start_offset} s")
        published += sent_this_pass
        passes += 1
    return published


def _wait(due: float, origin: int, pass_start: float, rate: float,
          clock: Callable[[int], None] | None, tick: float | None,
          now: Callable[[], float], sleep: Callable[[float], None]) -> None:
    """Sleep until wall time ``due``, publishing the bag clock every ``tick`` s meanwhile."""
    while (remaining := due - now()) > 0:
        if tick is None or clock is None:
            sleep(remaining)
            return
        sleep(min(remaining, tick))
        if due - now() > 0:
            clock(origin + int((now() - pass_start) * rate * 1e9))


MSGTYPE = re.compile(r"[A-Za-z][A-Za-z0-9_]*/msg/[A-Za-z][A-Za-z0-9_]*")


def message_class(msgtype: str) -> type:
    """The rclpy message class of ``pkg/msg/Name``; ImportError when not installed.

    ``msgtype`` comes from the bag file, so only names of that exact form are looked up (an
    ``<identifier>.msg`` module), and the result must be a ROS message class.
    """
    if not MSGTYPE.fullmatch(msgtype):
        raise ImportError(f"message type {msgtype!r} is not of the form package/msg/Name")
    package, kind, name = msgtype.split("/")
    try:
        cls = getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"no Python message class for {msgtype} ({exc}); install the ROS "
                          f"package {package}") from exc
    if not hasattr(cls, "get_fields_and_field_types"):
        raise ImportError(f"{package}.{kind}.{name} is not a ROS message class")
    return cls


def _publishers(node, topics: dict[str, str], explicit: bool, qos) -> dict:
    """One publisher per topic whose message class is installed (required when explicit)."""
    publishers = {}
    for topic, msgtype in topics.items():
        try:
            cls = message_class(msgtype)
        except ImportError as exc:
            if explicit:
                raise BagError(f"topic {topic!r}: {exc}") from exc
            LOG.warning("skipping %s: %s", topic, exc)
            continue
        publishers[topic] = node.create_publisher(cls, topic, qos)
    if not publishers:
        raise BagError(f"none of the topics {sorted(topics)} has an installed message type")
    return publishers


def _wait_for_subscribers(publishers: dict, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(p.get_subscription_count() > 0 for p in publishers.values()):
            time.sleep(0.3)  # discovery completes in both directions shortly after matching
            return
        time.sleep(0.05)
    lonely = sorted(t for t, p in publishers.items() if p.get_subscription_count() == 0)
    LOG.warning("no subscriber after %.1f s on %s; publishing anyway", timeout, lonely)


def replay(path: Path, options: ReplayOptions, *, qos_depth: int = 10,
           best_effort: bool = False, wait_for_subscribers: float = 5.0,
           restamped: Callable[[Restamp], None] | None = None) -> int:
    """Publish the bag at ``path`` into the ROS 2 graph through rclpy (init and shutdown
    here); returns the number of messages published. Publishers are reliable unless
    ``best_effort``, with queue depth ``qos_depth``; before the first message it waits up to
    ``wait_for_subscribers`` s (0: not at all) for every publisher to have a subscriber.
    ``/clock`` is published when ``options.clock_hz`` is set. ``restamped`` gets each pass's
    stamp map (``playback``). Raises ``BagError`` for an unreadable bag or topics without an
    installed message class."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock

    reliability = ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE
    qos = QoSProfile(depth=qos_depth, reliability=reliability)
    rclpy.init()
    try:
        node = rclpy.create_node("dudes_replay")
        with BagReader(path) as bag:
            topics = replay_topics(bag, options.topics)
            publishers = _publishers(node, topics, bool(options.topics), qos)
            topics = {t: topics[t] for t in publishers}
            clock_pub = node.create_publisher(Clock, CLOCK_TOPIC, qos) if options.clock_hz \
                else None
            if wait_for_subscribers > 0:
                _wait_for_subscribers(publishers, wait_for_subscribers)

            def clock(stamp_ns: int) -> None:
                msg = Clock()
                msg.clock.sec, msg.clock.nanosec = divmod(stamp_ns, 1_000_000_000)
                clock_pub.publish(msg)

            LOG.info("replaying %d topic(s) from %s at rate %g", len(topics), path,
                     options.rate)
            count = playback(bag, topics, options,
                             lambda topic, data, _: publishers[topic].publish(data),
                             clock if clock_pub is not None else None, restamped=restamped)
        time.sleep(0.2)  # let the last messages leave before the node goes away
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
    return count
