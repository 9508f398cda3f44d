"""Make an rcl call fail as rcl does: set rcutils' error state and return an error code."""

import ctypes


def refusing(text: str, code: int = 1):
    """A stand-in for an rcl function (any arguments) that fails with ``text``."""
    rcutils = ctypes.CDLL("librcutils.so")

    def refuse(*args):
        rcutils.rcutils_set_error_state(text.encode(), b"rcl", 7)
        return code
    return refuse


def error_is_set() -> bool:
    """Whether rcutils still holds an error state (a caller should have reset it)."""
    return bool(ctypes.CDLL("librcutils.so").rcutils_error_is_set())
