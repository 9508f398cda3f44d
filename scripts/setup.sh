#!/usr/bin/env bash
# Create or update .venv with the pinned environment and dudes_ros installed in editable mode.
# Idempotent: when requirements.lock and setup.py are unchanged since the last successful run,
# it does nothing. Needs only Python 3.11 and access to the package index.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
VENV=${DUDES_VENV:-.venv}
stamp="$VENV/.dudes-setup-$(cat requirements.lock setup.py package.xml | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi
command -v "$PYTHON" >/dev/null || { echo "setup: $PYTHON not found; install Python 3.11" >&2; exit 1; }
echo "setup: creating $VENV with the pinned environment (first run takes a few minutes)..." >&2
start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.lock
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
rm -f "$VENV"/.dudes-setup-*
touch "$stamp"
echo "setup: done in $(( $(date +%s) - start )) s" >&2
