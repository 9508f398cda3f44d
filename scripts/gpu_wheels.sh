#!/usr/bin/env bash
# Download the pure-Python and cp312 wheels that benchmarks/gpu_check.sh needs on the lent GPU
# machine (Python 3.12, no network) into benchmarks/gpu_wheels/ (git-ignored; carry it along).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=benchmarks/gpu_wheels
mkdir -p "$dest"
.venv/bin/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d "$dest" \
  onnx2torch==1.5.15 rosbags pytest pluggy iniconfig ruamel.yaml lz4 zstandard filelock tqdm
du -sh "$dest"
