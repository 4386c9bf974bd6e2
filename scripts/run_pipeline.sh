#!/usr/bin/env bash
# Set up, then materialise the whole asset graph on the embedded default.
# Runs and materialisations go to the instance in .dagster_home; files to ./artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export DAGSTER_HOME="$PWD/.dagster_home"
mkdir -p "$DAGSTER_HOME"
cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/agentscaler materialize --artifacts artifacts "$@"
