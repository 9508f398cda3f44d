"""Matplotlib without a display, chosen when a figure is drawn rather than at import: a module
that can draw must not switch the backend of whoever merely imports it."""

from __future__ import annotations

from types import ModuleType


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend (PNG files, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt
