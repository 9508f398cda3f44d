"""Test stand-in for NVIDIA's ``cuda`` (cuda-python) package; see tests/standins/README.md."""
