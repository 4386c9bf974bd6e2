#!/usr/bin/env bash
# Create .venv and install the project (extras from $EXTRAS, default: test). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
# torch first and pinned: an unpinned torch resolves to a multi-GB CUDA build
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e ".[${EXTRAS:-test}]"
.venv/bin/pip check
