"""The frame gate: one camera message in, an RGB frame the predictor accepts or a verdict out.

The node and ``dudes process-bag`` both pass every input message through ``FrameGate`` so that
they judge a frame the same way: decode the CDR bytes (the node; a bag's reader decodes its own
messages), drop it when its header stamp is older than ``max_input_age`` (the node, live data
only), convert it to RGB (``conversions``: encoding, step, data size, JPEG/PNG) and check its
size against the predictor (``Predictor.size_problem``, e.g. outside a TensorRT engine's
profile). No rclpy here: the gate is tested with plain bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dudes_ros.messages.conversions import (
    DEFAULT_MAX_PIXELS,
    ImageRejected,
    compressed_to_rgb,
    image_to_rgb,
)
from dudes_ros.messages.types import COMPRESSED_IMAGE, IMAGE, stamp_ns

REJECTED = "rejected"
DROPPED_STALE = "dropped_stale"
STALE_HINT = ("a recording played with its original stamps? `dudes replay` restamps to now "
              "by default; with `--clock` run the node with use_sim_time:=true; "
              "max_input_age:=0.0 turns the check off")


@dataclass(frozen=True)
class Frame:
    """A frame that passed: ``rgb`` ``uint8 [H, W, 3]`` (a view of the message buffer where
    possible), the message's ``header`` and its age in seconds (NaN: unstamped or not asked)."""

    rgb: np.ndarray
    header: Any
    age_s: float


@dataclass(frozen=True)
class Verdict:
    """A frame that did not pass: ``outcome`` is ``REJECTED`` or ``DROPPED_STALE``, ``reason``
    a short counting key (``cdr``, ``stale``, ``size`` or an ``ImageRejected.reason``) and
    ``text`` says what was wrong and what was expected."""

    outcome: str
    reason: str
    text: str


class FrameGate:
    """Decode, staleness, conversion and size check of one input type.

    ``msgtype``: ``IMAGE`` or ``COMPRESSED_IMAGE``; ``size_problem``: the predictor's
    (``Predictor.size_problem``), None when any size is accepted; ``max_input_age``: seconds,
    0 = no staleness check; ``typestore``: decodes CDR bytes in ``admit_cdr``."""

    def __init__(self, msgtype: str, size_problem: Callable[[int, int], str | None] | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, max_input_age: float = 0.0,
                 typestore: Any = None) -> None:
        if msgtype not in (IMAGE, COMPRESSED_IMAGE):
            raise ValueError(f"frame gate of {msgtype!r}; expected {IMAGE} or {COMPRESSED_IMAGE}")
        self.msgtype = msgtype
        self.size_problem = size_problem
        self.max_pixels = max_pixels
        self.max_input_age = max_input_age
        self.typestore = typestore

    def admit_cdr(self, raw: bytes | memoryview, now_ns: int | None = None) -> Frame | Verdict:
        """``admit`` for CDR bytes; bytes that do not decode as ``msgtype`` are rejected
        (``cdr``). The decoded arrays are views of ``raw``."""
        try:
            msg = self.typestore.deserialize_cdr(memoryview(raw), self.msgtype)
        except Exception as exc:  # noqa: BLE001 - foreign bytes: whatever fails, reject
            return Verdict(REJECTED, "cdr", f"rejected a message that is not a CDR-encoded "
                           f"{self.msgtype}: {exc!r}")
        return self.admit(msg, now_ns)

    def admit(self, msg: Any, now_ns: int | None = None) -> Frame | Verdict:
        """A decoded message (rclpy or rosbags) judged at clock time ``now_ns`` (None: no
        staleness check, as for recorded data)."""
        stamp = stamp_ns(msg.header)
        age = (now_ns - stamp) * 1e-9 if stamp and now_ns is not None else math.nan
        frame_id = msg.header.frame_id
        if self.max_input_age > 0 and age > self.max_input_age:
            return Verdict(DROPPED_STALE, "stale", f"dropped a frame whose header stamp is "
                           f"{age:.3f} s old (frame_id {frame_id!r}): older than max_input_age "
                           f"{self.max_input_age} s. {STALE_HINT}")
        try:
            if self.msgtype == COMPRESSED_IMAGE:
                rgb = compressed_to_rgb(msg, self.max_pixels)
            else:
                rgb = image_to_rgb(msg, self.max_pixels)
        except ImageRejected as exc:
            return Verdict(REJECTED, exc.reason, f"rejected frame (frame_id {frame_id!r}): {exc}")
        problem = self.size_problem(*rgb.shape[:2]) if self.size_problem else None
        if problem:  # e.g. outside the TensorRT engine's profile
            return Verdict(REJECTED, "size", f"rejected frame (frame_id {frame_id!r}): {problem}")
        return Frame(rgb, msg.header, age)
