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
# llama.cpp's CPU-tuned build (GGML_NATIVE) segfaults on CPUs with AMX (seen on this machine): build a
# portable one, from source and not from pip's cache, which may hold a native build of the same version
if [[ ",${EXTRAS:-test}," == *",llamacpp,"* ]] && [ ! -f .venv/.llamacpp-portable ]; then
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
    .venv/bin/pip install -q --no-cache-dir --force-reinstall --no-deps "llama-cpp-python==0.3.36"
  touch .venv/.llamacpp-portable
fi
.venv/bin/pip install -q -e ".[${EXTRAS:-test}]"
.venv/bin/pip check
