#!/usr/bin/env bash
# Create .venv-bfcl with bfcl-eval (BFCL v4's data, backends and checkers) for the bfcl_evaluation asset. Safe to re-run.
# Own venv: bfcl-eval pins numpy==1.26.4 and networkx==3.3, which the project's .venv (numpy 2) does not.
# The scorer runs in it through Dagster Pipes: agentscaler_dagster/evaluation/bfcl_scorer.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${BFCL_VENV:-.venv-bfcl}
BFCL_VERSION=${BFCL_VERSION:-2026.3.23}
# the scorer calls bfcl-eval's per-entry evaluation functions, so the version is pinned
CHECK='import dagster_pipes, bfcl_eval.eval_checker.eval_runner; from importlib.metadata import version; assert version("bfcl-eval") == "'"$BFCL_VERSION"'"'
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
export BFCL_PROJECT_ROOT=${BFCL_PROJECT_ROOT:-${TMPDIR:-/tmp}/agentscaler-bfcl}  # bfcl-eval writes result/ and score/ there on import
if "$VENV/bin/python" -c "$CHECK" 2>/dev/null; then
  echo "bfcl-eval $BFCL_VERSION already installed in $VENV"; exit 0
fi
"$VENV/bin/pip" install -q --upgrade pip
# sentence-transformers (a bfcl-eval requirement, used only by its memory categories) pulls torch: take the
# CPU wheel first; an unpinned torch resolves to a multi-GB CUDA build
"$VENV/bin/pip" install -q torch==2.13.0
# soundfile: qwen-agent (unpinned by bfcl-eval) imports it without declaring it, and bfcl-eval's checker imports
# qwen-agent through its model registry; dagster-pipes on the project's release, to report back to Dagster
"$VENV/bin/pip" install -q "bfcl-eval==$BFCL_VERSION" soundfile dagster-pipes==1.13.27
"$VENV/bin/pip" check
"$VENV/bin/python" -c "$CHECK; print('bfcl-eval', version('bfcl-eval'), 'in', '$VENV')"
