"""Test stand-in for ``cuda.bindings``; see tests/standins/README.md."""
