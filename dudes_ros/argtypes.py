"""argparse value types shared by the ``dudes`` commands, so that every command spells a
size and a count the same way."""

from __future__ import annotations

import argparse

MIN_SIDE = 16
"""The smallest image side any command accepts (the street generator's and the deploy graph's
smallest size)."""


def image_size(text: str) -> tuple[int, int]:
    """``HEIGHTxWIDTH`` (e.g. ``256x512``) -> ``(height, width)``, both sides >= 16 pixels."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size {text!r}: expected HEIGHTxWIDTH, e.g. 256x512") from None
    if h < MIN_SIDE or w < MIN_SIDE:
        raise argparse.ArgumentTypeError(
            f"size {text!r}: expected both sides >= {MIN_SIDE} pixels")
    return h, w


def positive_int(text: str) -> int:
    """An integer > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer > 0, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected an integer > 0, got {text!r}")
    return value
