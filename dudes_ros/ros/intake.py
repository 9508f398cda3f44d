"""The worker's own intake of camera messages: it waits on the image subscriptions itself.

rclpy's Python executor costs about 2 ms per large message between the middleware receiving it
and the callback running (2-core VM, 1024x512 rgb8 ``Image`` between two processes: the
callback ran 3.6 ms after the stamp, 0.8 ms after rmw's ``received_timestamp``; a thread that
waits on the subscription with an rcl wait set and takes the message itself had it after
1.75 ms). The node's executor therefore never sees the image subscriptions (they sit in a
``WorkerOwned`` callback group, which no executor runs) and the worker thread takes the newest
message of every camera straight from them. The wait set comes from rclpy's C extension, the
same one ``rclpy.wait_for_message`` uses; no public rclpy class offers a wait set.

Each taken message's arrival is the middleware's reception time, carried over to the steady
clock (``Taken.arrived_ns``), so the node's latency figures count the time a frame waited for
the worker and do not depend on header stamps or on the ROS clock (sim time during a replay).

Messages are taken through rcl into buffers kept across takes (``SerializedTaker``), not into
fresh ``bytes`` as rclpy takes raw ones: one pass less over each frame; a taken raw message
is valid until the next ``take_latest`` (other subscriptions' messages are deserialized from
it). ``via`` says which path is used.

Frames the worker never saw (replaced in the subscription's ``qos.depth`` queue before it took
one, or lost on the way) are counted from gaps in each publisher's sequence numbers, which
needs the publisher's GID with each message. rcl gives it on every distribution; rclpy's own
take only from Kilted on (``distro.Distro.rclpy_info_has_publisher_gid``), so on Jazzy the
rclpy path, used only where librcl cannot be loaded, counts no gaps (``counts_gaps``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rclpy.callback_groups import CallbackGroup
from rclpy.context import Context
from rclpy.guard_condition import GuardCondition
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.serialization import deserialize_message
from rclpy.subscription import Subscription

from dudes_ros.ros.distro import current
from dudes_ros.ros.rcl_serialized import SerializedTaker, rcl


class WorkerOwned(CallbackGroup):
    """A callback group no executor runs: its subscriptions are read by ``Intake``."""

    def can_execute(self, entity: Any) -> bool:
        return False

    def beginning_execution(self, entity: Any) -> bool:
        return False

    def ending_execution(self, entity: Any) -> None:
        """Never called: no execution ever begins."""


@dataclass
class Taken:
    """What one ``Intake.take_latest`` call found."""

    # camera -> its newest message (raw subscriptions: uint8 [N] CDR or bytes)
    messages: dict[str, Any] = field(default_factory=dict)
    arrived_ns: dict[str, int] = field(default_factory=dict)  # camera -> its arrival, steady ns
    arrived: int = 0  # messages taken plus frames known missed (sequence gaps)
    superseded: int = 0  # of those, the ones not returned: an older message or a gap


class Intake:
    """Newest message per camera from subscriptions in a ``WorkerOwned`` group."""

    def __init__(self, context: Context, subscriptions: dict[str, Subscription]) -> None:
        self._subscriptions = subscriptions
        self._wake = GuardCondition(None, None, context)
        self._wait_set = _rclpy.WaitSet(len(subscriptions), 1, 0, 0, 0, 0, context.handle)
        self._last: dict[str, tuple[bytes, int]] = {}  # camera -> (publisher gid, seq)
        lib = rcl()
        self._takers = {camera: SerializedTaker(sub, lib) for camera, sub in subscriptions.items()
                        if lib is not None and hasattr(sub.handle, "pointer")}
        self.via = "rcl" if self._takers else "rclpy"
        # whether frames missed between two takes are counted (see the module docstring)
        self.counts_gaps = bool(self._takers) or current().rclpy_info_has_publisher_gid

    def take_latest(self, timeout: float) -> Taken:
        """Wait up to ``timeout`` s for a message on any camera (or ``wake``), then take every
        queued message and keep the newest per camera."""
        wait_set = self._wait_set
        wait_set.clear_entities()
        for sub in self._subscriptions.values():
            wait_set.add_subscription(sub.handle)
        wait_set.add_guard_condition(self._wake.handle)
        wait_set.wait(int(timeout * 1e9))
        taken = Taken()
        for camera, sub in self._subscriptions.items():
            taker = self._takers.get(camera)
            while True:
                if taker is not None:
                    result = taker.take()
                    if result is not None and not sub.raw:
                        result = (deserialize_message(result[0].tobytes(), sub.msg_type),
                                  result[1])
                else:
                    with sub.handle:
                        result = sub.handle.take_message(sub.msg_type, sub.raw)
                if result is None:
                    break
                message, info = result
                missed = self._missed(camera, info)
                taken.arrived += 1 + missed
                taken.superseded += missed + (camera in taken.messages)
                taken.messages[camera] = message
                taken.arrived_ns[camera] = _arrival_steady_ns(info)
        return taken

    def wake(self) -> None:
        """Make a pending or the next ``take_latest`` return at once."""
        self._wake.trigger()

    def close(self) -> None:
        self._wait_set.destroy_when_not_in_use()
        self._wake.destroy()
        for taker in self._takers.values():
            taker.close()
        self._takers = {}

    def _missed(self, camera: str, info: dict[str, Any]) -> int:
        """Frames of this publisher between its previous message and this one (0 when the
        middleware reports no sequence numbers or the publisher changed)."""
        seq = info.get("publication_sequence_number")
        gid = info.get("publisher_gid", {}).get("data")
        if not isinstance(seq, int) or gid is None:
            return 0
        previous = self._last.get(camera)
        self._last[camera] = (gid, seq)
        if previous is None or previous[0] != gid or seq <= previous[1]:
            return 0
        return seq - previous[1] - 1


def _arrival_steady_ns(info: dict[str, Any]) -> int:
    """Steady-clock time at which the middleware received the message: now, minus how long
    it has waited since rmw's ``received_timestamp`` (system clock); now when rmw gives none."""
    steady, system = time.monotonic_ns(), time.time_ns()
    received = info.get("received_timestamp")
    if not isinstance(received, int) or received <= 0:
        return steady
    return steady - max(0, system - received)
