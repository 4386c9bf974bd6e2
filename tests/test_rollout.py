"""The episode loop and the programmatic simulators.

Real parts: an environment package built by envgen from the demo domain's ToolSpecs and its
hand-written database (so ids are known: c-1, o-1 ...), served by the sandbox runtime; tasks from
the real sampler; the real ScenarioUserSimulator / OracleAgentSimulator. The few hand-written agents below are
agents in their own right (they implement AgentPolicy), used to drive the loop into its error
paths: a crash, a malformed message, bad tool calls, a never-ending episode.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from agentscaler_dagster.filters import check_structure, successful_calls, canonical_arguments
from agentscaler_dagster.rollout import (
    STOP_MARKER,
    OracleAgentSimulator,
    ScenarioUserSimulator,
    read_trajectories,
    run_episode,
    run_rollouts,
    write_trajectories,
)
from agentscaler_dagster.tasks import sample_tasks
from agentscaler_dagster.sandbox import Environment
from agentscaler_dagster.tasks.demo_domain import build_demo_package


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    package = build_demo_package(tmp_path_factory.mktemp("demo-env"), from_snapshot=True)
    with Environment.load(package) as environment:
        yield environment


@pytest.fixture(scope="module")
def tasks(env):
    return sample_tasks(env, n_tasks=12, seed=5, max_walk_length=4)


def _user(seed=0):
    return ScenarioUserSimulator(seed)


def test_simulated_episode_is_well_formed_and_reaches_the_gold_state(env, tasks):
    for task in tasks:
        t = run_episode(task, env, OracleAgentSimulator(1, error_rate=0.0), _user(1), trial=0)
        assert t.termination == "user_stop", t.error
        assert check_structure(t.messages) is None
        assert t.messages[0]["role"] == "system" and t.messages[1]["role"] == "user"
        assert STOP_MARKER in t.messages[-1]["content"]
        assert t.final_state_hash == task.gold_state_hash
        assert successful_calls(t.messages) == [(a.name, canonical_arguments(a.arguments)) for a in task.gold_actions]
        for m in t.messages:
            if m["role"] == "tool":
                json.loads(m["content"])  # successful outputs are JSON
            if m["role"] == "assistant" and m.get("tool_calls"):
                for tc in m["tool_calls"]:
                    assert tc["type"] == "function" and isinstance(tc["function"]["arguments"], str)
        assert t.backend == "oracle-agent-simulator" and t.sampling["error_rate"] == 0.0 and t.agent_mistakes == []
        assert len(t.timings["steps"]) >= 2 * len(task.gold_actions)


class _CrashingAgent:
    name = "crashing-agent"

    def __init__(self):
        self.turns = 0

    def act(self, messages, tools):
        self.turns += 1
        if self.turns == 2:
            raise RuntimeError("backend went away")
        return {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_customer", "arguments": '{"customer_id": "c-1"}'}}]}


def test_agent_exception_is_recorded_not_raised(env, tasks):
    t = run_episode(tasks[0], env, _CrashingAgent(), _user(), trial=0)
    assert t.termination == "agent_error"
    assert "RuntimeError: backend went away" in t.error
    assert [m["role"] for m in t.messages] == ["system", "user", "assistant", "tool"]


class _WordsAgent:
    name = "words-agent"

    def act(self, messages, tools):
        return "not a message"


def test_malformed_agent_output_is_an_agent_error(env, tasks):
    t = run_episode(tasks[0], env, _WordsAgent(), _user(), trial=0)
    assert t.termination == "agent_error" and "AgentOutputError" in t.error


class _ClumsyAgent:
    """Bad JSON, an unknown tool, a domain error, then one good call and a reply."""

    name = "clumsy-agent"

    def __init__(self):
        self.turn = 0

    def act(self, messages, tools):
        self.turn += 1
        calls = {
            1: ("get_order", "{order_id: o-1"),
            2: ("get_ordr", '{"order_id": "o-1"}'),
            3: ("cancel_order", '{"order_id": "o-9", "reason": "no longer needed"}'),  # there is no o-9
            4: ("get_order", {"order_id": "o-1"}),  # parsed arguments are accepted and re-serialised
        }
        if self.turn in calls:
            name, args = calls[self.turn]
            return {"role": "assistant", "tool_calls": [{"id": f"k{self.turn}", "function": {"name": name, "arguments": args}}]}
        return {"role": "assistant", "content": "Here is what I found."}


def test_tool_errors_are_observations(env, tasks):
    task = tasks[0]
    t = run_episode(task, env, _ClumsyAgent(), _user(), trial=0)
    tool_msgs = [m for m in t.messages if m["role"] == "tool"]
    assert [m["content"].startswith("Error") for m in tool_msgs] == [True, True, True, False]
    assert "not valid JSON" in tool_msgs[0]["content"]
    assert "unknown tool 'get_ordr'" in tool_msgs[1]["content"]
    assert "not found" in tool_msgs[2]["content"]
    assert not tool_msgs[2]["content"].startswith("Error: Error")
    assert json.loads(tool_msgs[3]["content"])["order_id"] == "o-1"
    assert t.termination == "user_stop"
    assert t.final_state_hash == task.initial_state_hash, "failed calls must not change the state"
    # the loop records the malformed call as an observation; the validity filter is what rejects it
    assert "arguments are not valid JSON" in check_structure(t.messages)


class _LoopingAgent:
    name = "looping-agent"

    def act(self, messages, tools):
        n = sum(1 for m in messages if m["role"] == "assistant")
        return {"role": "assistant", "tool_calls": [
            {"id": f"l{n}", "type": "function", "function": {"name": "get_customer", "arguments": '{"customer_id": "c-1"}'}}]}


def test_max_turns_bounds_the_episode(env, tasks):
    t = run_episode(tasks[0], env, _LoopingAgent(), _user(), trial=0, max_turns=5)
    assert t.termination == "max_turns"
    assert sum(1 for m in t.messages if m["role"] == "assistant") == 5


class _BrokenUser(ScenarioUserSimulator):
    def reply(self, messages):
        raise KeyError("persona")


def test_user_exception_is_recorded(env, tasks):
    t = run_episode(tasks[0], env, OracleAgentSimulator(0, error_rate=0.0), _BrokenUser(0), trial=0)
    assert t.termination == "user_error" and "persona" in t.error


def _digest(trajectories, path) -> str:
    return hashlib.sha256(write_trajectories(trajectories, path, timings=False).read_bytes()).hexdigest()


def test_rollouts_are_deterministic_per_seed(env, tasks, tmp_path):
    def go(seed):
        return run_rollouts(tasks, env, lambda s: OracleAgentSimulator(s, error_rate=0.4), ScenarioUserSimulator,
                            trials=2, seed=seed)

    first, second, other = go(0), go(0), go(1)
    assert len(first) == 2 * len(tasks)
    assert len({t.trajectory_id for t in first}) == len(first)
    assert _digest(first, tmp_path / "a.jsonl") == _digest(second, tmp_path / "b.jsonl")
    assert _digest(first, tmp_path / "a.jsonl") != _digest(other, tmp_path / "c.jsonl")
    # the trials of one task are seeded independently of the other tasks
    alone = run_rollouts(tasks[3:4], env, lambda s: OracleAgentSimulator(s, error_rate=0.4), ScenarioUserSimulator,
                         trials=2, seed=0)
    assert [t.messages for t in alone] == [t.messages for t in first[6:8]]


def test_trajectory_files_roundtrip(env, tasks, tmp_path):
    seen = []
    trajectories = run_rollouts(tasks[:3], env, OracleAgentSimulator, ScenarioUserSimulator, trials=1, seed=0,
                                progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    path = write_trajectories(trajectories, tmp_path / "t.jsonl")
    assert read_trajectories(path) == trajectories


def test_task_from_another_environment_gives_setup_error_and_the_rest_run(env, tasks):
    stray = tasks[0].model_copy(update={"task_id": "t-stray", "initial_state_id": "nope"})
    out = run_rollouts([stray, tasks[1]], env, OracleAgentSimulator, ScenarioUserSimulator, trials=1, seed=0)
    assert out[0].termination == "setup_error" and "nope" in out[0].error
    assert out[1].termination == "user_stop"
