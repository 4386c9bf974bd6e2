"""The three-stage filter.

Real parts: an environment package built by envgen from the demo domain's ToolSpecs and its
hand-written database (ids known: customers c-1, c-2; orders o-1, o-2, o-3), served by the
sandbox runtime; hand-built trajectories whose tool calls are really executed on it (so their
final state hashes are true), and trajectories from the real simulators. Each hand-built trajectory breaks exactly one stage.
"""

from __future__ import annotations

import json

import pytest

from agentscaler_dagster.contracts import GoldAction, Task, Trajectory, content_hash, state_hash
from agentscaler_dagster.filters import STAGES, apply_filters, canonical_arguments, funnel_picture
from agentscaler_dagster.rollout import OracleAgentSimulator, ScenarioUserSimulator, run_rollouts
from agentscaler_dagster.tasks import sample_tasks
from agentscaler_dagster.sandbox import Environment
from agentscaler_dagster.tasks.demo_domain import build_demo_package

START = "snapshot"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    package = build_demo_package(tmp_path_factory.mktemp("demo-env"), from_snapshot=True)
    with Environment.load(package) as environment:
        yield environment


def _task(env, actions: list[tuple[str, dict]], task_id: str) -> Task:
    state = env.initial_states[START]
    outputs = []
    for name, args in actions:
        result = env.call(state, name, args)
        assert result.ok, result.error
        state, _ = result.state, outputs.append(result.output)
    ops = {s.name: s.operation for s in env.tool_specs}
    return Task(
        task_id=task_id, domain_id=env.domain_id, user_intent="test", initial_state_id=START,
        initial_state_hash=state_hash(env.initial_states[START]),
        gold_actions=[GoldAction(name=n, arguments=a) for n, a in actions],
        gold_state_hash=state_hash(state), read_only=all(ops[n] == "read" for n, _ in actions), gold_outputs=outputs,
    )


def _trajectory(env, task: Task, calls: list[tuple[str, dict | str]], *, reply="Done, anything else?", tid=None,
                **overrides) -> Trajectory:
    """A dialogue whose tool calls are executed on the real environment, one call per assistant turn."""
    state = env.initial_states[task.initial_state_id]
    messages = [{"role": "system", "content": "policy"}, {"role": "user", "content": "please help"}]
    for i, (name, args) in enumerate(calls):
        text = args if isinstance(args, str) else json.dumps(args)
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": f"c{i}", "type": "function", "function": {"name": name, "arguments": text}}]})
        result = env.call(state, name, json.loads(text))
        state = result.state
        content = json.dumps(result.output) if result.ok else result.error
        messages.append({"role": "tool", "tool_call_id": f"c{i}", "content": content})
    messages.append({"role": "assistant", "content": reply})
    messages.append({"role": "user", "content": "Thanks! ###STOP###"})
    fields = dict(trajectory_id=tid or "tr-" + content_hash(messages)[:12], task_id=task.task_id, domain_id=task.domain_id,
                  trial=0, messages=messages, final_state_hash=state_hash(state), termination="user_stop", backend="hand")
    fields.update(overrides)
    return Trajectory(**fields)


CANCEL = ("cancel_order", {"order_id": "o-1", "reason": "no longer needed"})
LOOKUP = ("get_order", {"order_id": "o-1"})


@pytest.fixture(scope="module")
def write_task(env):
    return _task(env, [LOOKUP, CANCEL], "t-write")


@pytest.fixture(scope="module")
def read_task(env):
    return _task(env, [("get_customer", {"customer_id": "c-1"}), ("list_orders", {"customer_id": "c-1"})], "t-read")


def _one(env, trajectory, *tasks):
    return apply_filters([trajectory], {t.task_id: t for t in tasks})


def test_good_trajectory_passes(env, write_task):
    result = _one(env, _trajectory(env, write_task, [LOOKUP, CANCEL]), write_task)
    assert result.rejected == [] and len(result.kept) == 1
    assert result.funnel == {"input": 1, "validity": 1, "state_alignment": 1, "exact_match": 1}


def test_tool_error_but_otherwise_correct_passes(env, write_task):
    # a typo'd id fails and the agent retries, twice
    calls = [("get_order", {"order_id": "o-9"}), LOOKUP, ("cancel_order", {"order_id": "o-11", "reason": "no longer needed"}), CANCEL]
    t = _trajectory(env, write_task, calls)
    assert sum(m["content"].startswith("Error") for m in t.messages if m["role"] == "tool") == 2
    assert _one(env, t, write_task).kept == [t]


@pytest.mark.parametrize(
    "breakage, expected",
    [
        ("two_users", "two user messages in a row"),
        ("orphan_tool", "not an open tool call"),
        ("bad_json", "not valid JSON"),
        ("ends_with_tool", "never answered"),
        ("assistant_first", "must follow a user or tool message"),
        ("repetition", "repeats the 4-gram"),
        ("agent_error", "did not finish (termination=agent_error: RuntimeError"),
        ("unknown_task", "not among the given tasks"),
        ("duplicate_ids", "two tool calls with id 'c0'"),
    ],
)
def test_validity_rejections(env, write_task, breakage, expected):
    t = _trajectory(env, write_task, [LOOKUP, CANCEL])
    msgs = [dict(m) for m in t.messages]
    update: dict = {}
    if breakage == "two_users":
        msgs.insert(2, {"role": "user", "content": "hello?"})
    elif breakage == "orphan_tool":
        msgs.insert(4, {"role": "tool", "tool_call_id": "zzz", "content": "{}"})
    elif breakage == "bad_json":
        msgs[2] = {**msgs[2], "tool_calls": [{**msgs[2]["tool_calls"][0], "function": {"name": "get_order", "arguments": "{oops"}}]}
    elif breakage == "ends_with_tool":
        msgs = msgs[:5]
    elif breakage == "assistant_first":
        msgs = [msgs[0], *msgs[2:]]
    elif breakage == "repetition":
        msgs[-2] = {"role": "assistant", "content": "Your order is cancelled now. " * 5}
    elif breakage == "agent_error":
        msgs = msgs[:-2]
        update = {"termination": "agent_error", "error": "RuntimeError: boom"}
    elif breakage == "duplicate_ids":
        msgs[2] = {**msgs[2], "tool_calls": msgs[2]["tool_calls"] * 2}
    elif breakage == "unknown_task":
        update = {"task_id": "t-missing"}
    broken = t.model_copy(update={"messages": msgs, **update})
    result = _one(env, broken, write_task)
    assert result.kept == []
    [(tid, stage, reason)] = result.rejected
    assert (tid, stage) == (t.trajectory_id, "validity")
    assert expected in reason


def test_ngram_threshold_is_a_parameter(env, write_task):
    t = _trajectory(env, write_task, [LOOKUP, CANCEL], reply="Your order is cancelled now. " * 3)
    assert _one(env, t, write_task).kept == [t]  # each 4-gram thrice: allowed at the default 3
    assert apply_filters([t], {write_task.task_id: write_task}, max_ngram_repeat=2).rejected[0][1] == "validity"


def test_state_alignment_rejections(env, write_task, read_task):
    wrong_reason = ("cancel_order", {"order_id": "o-1", "reason": "ordered by mistake"})
    [(_, stage, reason)] = _one(env, _trajectory(env, write_task, [LOOKUP, wrong_reason]), write_task).rejected
    assert stage == "state_alignment" and "differs from the gold state" in reason
    [(_, stage, reason)] = _one(env, _trajectory(env, write_task, [LOOKUP]), write_task).rejected
    assert stage == "state_alignment" and "never changed" in reason
    # a read-only task is judged on its state too: a stray write fails here, not only at exact match
    stray = _trajectory(env, read_task, [("get_customer", {"customer_id": "c-1"}), ("list_orders", {"customer_id": "c-1"}), CANCEL])
    [(_, stage, reason)] = _one(env, stray, read_task).rejected
    assert stage == "state_alignment" and "read-only task changed the state" in reason


def test_exact_match_rejections(env, read_task, write_task):
    cases = [
        ([("get_customer", {"customer_id": "c-1"})], "missing list_orders"),
        ([("get_customer", {"customer_id": "c-1"}), ("list_orders", {"customer_id": "c-1", "status": "pending"})], "call 1"),
        ([("get_customer", {"customer_id": "c-2"}), ("list_orders", {"customer_id": "c-1"})], "call 0"),
        ([("get_customer", {"customer_id": "c-1"}), ("list_orders", {"customer_id": "c-1"}), ("get_customer", {"customer_id": "c-1"})], "extra get_customer"),
        ([("list_orders", {"customer_id": "c-1"}), ("get_customer", {"customer_id": "c-1"})], "call 0"),
    ]
    for calls, expected in cases:
        [(_, stage, reason)] = _one(env, _trajectory(env, read_task, calls), read_task).rejected
        assert stage == "exact_match" and expected in reason, (calls, reason)
    # the same final state reached by a different write path still fails exact match
    [(_, stage, _)] = _one(env, _trajectory(env, write_task, [CANCEL]), write_task).rejected
    assert stage == "exact_match"


def test_integral_floats_and_null_arguments_match(env, write_task):
    task = _task(env, [("create_order", {"customer_id": "c-1", "item": "lamp", "quantity": 2})], "t-create")
    t = _trajectory(env, task, [("create_order", '{"customer_id": "c-1", "item": "lamp", "quantity": 2}')])
    t.messages[2]["tool_calls"][0]["function"]["arguments"] = '{"customer_id": "c-1", "item": "lamp", "quantity": 2.0}'
    assert _one(env, t, task).kept == [t]
    assert canonical_arguments({"a": None, "b": [1.0, 2.5]}) == canonical_arguments({"b": [1, 2.5]})


def test_simulated_rollouts_funnel(env, tmp_path):
    tasks = sample_tasks(env, n_tasks=30, seed=2)
    by_id = {t.task_id: t for t in tasks}

    def rollouts(rate):
        return run_rollouts(tasks, env, lambda s: OracleAgentSimulator(s, error_rate=rate), ScenarioUserSimulator,
                            trials=2, seed=0)

    clean = apply_filters(rollouts(0.0), by_id)
    assert len(clean.kept) == 60, clean.rejected

    noisy_trajectories = rollouts(0.3)
    noisy = apply_filters(noisy_trajectories, by_id)
    funnel = noisy.funnel
    assert list(funnel) == ["input", *STAGES]
    assert funnel["input"] == 60 == len(noisy.kept) + len(noisy.rejected)
    counts = list(funnel.values())
    assert all(a >= b for a, b in zip(counts, counts[1:]))
    for before, stage in zip(["input", *STAGES], STAGES):
        assert funnel[before] - funnel[stage] == len(noisy.rejected_at(stage))
    assert funnel["exact_match"] == len(noisy.kept) < 60
    # only trajectories with an injected mistake are rejected, and every rejection has a reason
    rejected_ids = {r[0] for r in noisy.rejected}
    for t in noisy_trajectories:
        if not t.agent_mistakes:
            assert t.trajectory_id not in rejected_ids
    assert all(reason for _, _, reason in noisy.rejected)
    # some mistakes are recovered from (retry after a tool error), and those are kept
    recovered = [t for t in noisy.kept if any(m["role"] == "tool" and m["content"].startswith("Error") for m in t.messages)]
    assert recovered

    png = funnel_picture(funnel, tmp_path / "funnel.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
