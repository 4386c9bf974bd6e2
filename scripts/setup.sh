#!/usr/bin/env bash
# Create .venv and install the project (extras from $EXTRAS, default: test). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# the sandbox jails tool code with bubblewrap and seccomp (agentscaler_dagster/sandbox/jail.py)
if ! command -v bwrap >/dev/null 2>&1 || ! ls /usr/lib/*/libseccomp.so.2 /lib/*/libseccomp.so.2 >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -qq bubblewrap libseccomp2 >/dev/null 2>&1 \
      || (apt-get update -qq && apt-get install -y -qq bubblewrap libseccomp2 >/dev/null))
  else
    echo "setup: the sandbox needs bubblewrap and libseccomp2 (sudo apt-get install bubblewrap libseccomp2);" \
         "without them tool code will not run unless AGENTSCALER_SANDBOX_ISOLATION=weak" >&2
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
# torch first and pinned: an unpinned torch resolves to a multi-GB CUDA build
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e ".[${EXTRAS:-test}]"
.venv/bin/pip check
