#!/usr/bin/env bash
# Create or update a venv with the pinned environment of one ROS 2 distribution and dudes_ros
# installed in editable mode. ROS_DISTRO picks the distribution:
#   kilted (default): .venv from requirements.lock, everything (torch, training, export);
#   jazzy:            .venv-jazzy from requirements-jazzy.lock, the node and the tools that
#                     need no torch (ROS 2 Jazzy wheels, Fast DDS 2.14).
# DUDES_VENV overrides the folder. Idempotent: when the lock, setup.py and package.xml are
# unchanged since the last successful run, it does nothing. Needs only Python 3.11 and access
# to the package index.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
DISTRO=${ROS_DISTRO:-kilted}
case "$DISTRO" in
  kilted) LOCK=requirements.lock; VENV=${DUDES_VENV:-.venv} ;;
  jazzy) LOCK=requirements-jazzy.lock; VENV=${DUDES_VENV:-.venv-jazzy} ;;
  *)
    # A sourced ROS install sets ROS_DISTRO too: say which values this script takes.
    echo "setup: ROS_DISTRO=$DISTRO has no pinned environment here; use ROS_DISTRO=kilted" \
      "(the default) or ROS_DISTRO=jazzy" >&2
    exit 1 ;;
esac
stamp="$VENV/.dudes-setup-$(cat "$LOCK" setup.py package.xml | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi
command -v "$PYTHON" >/dev/null || { echo "setup: $PYTHON not found; install Python 3.11" >&2; exit 1; }
echo "setup: creating $VENV for ROS 2 $DISTRO with the pinned environment (first run takes a" \
  "few minutes)..." >&2
start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# A venv is never part of the repository, whatever its name (Python 3.13's venv does the same).
[ -f "$VENV/.gitignore" ] || echo "*" > "$VENV/.gitignore"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$LOCK"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
rm -f "$VENV"/.dudes-setup-*
touch "$stamp"
echo "setup: $VENV done in $(( $(date +%s) - start )) s" >&2
