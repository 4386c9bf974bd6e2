"""The one judge (agentscaler_dagster/judge.py): each criterion, and the filter and evaluation agreeing.

Real parts: Task and Trajectory contracts built the way rollouts write them; no environment is needed
because the judge reads only what an episode recorded.
"""

from __future__ import annotations

import json

import pytest

from agentscaler_dagster.contracts import GoldAction, Task, Trajectory
from agentscaler_dagster.evaluation.metrics import judge_episode
from agentscaler_dagster.filters import apply_filters
from agentscaler_dagster.judge import judge

WRITES = {"cancel_order", "update_address"}
GOLD = [("find_customer", {"email": "ann@example.com"}), ("list_orders", {"customer_id": "c-1"}),
        ("cancel_order", {"order_id": "o-2"}), ("update_address", {"customer_id": "c-1", "city": "Oslo"})]


def _task(expected_outputs=(), gold=GOLD) -> Task:
    return Task(task_id="t1", domain_id="shop", user_intent="Cancel my last order and move me to Oslo.",
                initial_state_id="s1", initial_state_hash="init", gold_actions=[GoldAction(name=n, arguments=a)
                                                                              for n, a in gold],
                gold_state_hash="gold", read_only=False, expected_outputs=list(expected_outputs))


def _episode(calls, *, final="gold", errors=(), closing="Done: order o-2 is cancelled and your city is Oslo.") -> Trajectory:
    messages = [{"role": "system", "content": "policy"}, {"role": "user", "content": "Please help."}]
    for i, (name, arguments) in enumerate(calls):
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": f"c{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}]})
        messages.append({"role": "tool", "tool_call_id": f"c{i}",
                         "content": "Error: not found" if i in errors else json.dumps({"ok": True})})
    messages.append({"role": "assistant", "content": closing})
    return Trajectory(trajectory_id="x", task_id="t1", domain_id="shop", trial=0, messages=messages,
                      final_state_hash=final, termination="user_stop", backend="test")


def test_gold_episode_succeeds():
    assert judge(_task(), _episode(GOLD), write_tools=WRITES).success


def test_lookups_may_come_in_any_order_writes_may_not():
    lookups_swapped = [GOLD[1], GOLD[0], GOLD[2], GOLD[3]]
    assert judge(_task(), _episode(lookups_swapped), write_tools=WRITES).success
    writes_swapped = [GOLD[0], GOLD[1], GOLD[3], GOLD[2]]
    verdict = judge(_task(), _episode(writes_swapped), write_tools=WRITES)
    assert not verdict.success and verdict.reason.startswith("write 0: expected cancel_order")
    # without knowing which tools write, the whole sequence is held to its order
    assert not judge(_task(), _episode(lookups_swapped)).success


@pytest.mark.parametrize("calls, says", [
    ([GOLD[1], GOLD[2], GOLD[3]], "lookup missing: find_customer"),
    ([*GOLD[:2], ("list_orders", {"customer_id": "c-9"}), *GOLD[2:]], "lookup not in the gold actions"),
    ([*GOLD[:2], GOLD[2]], "missing update_address"),
    ([*GOLD, ("cancel_order", {"order_id": "o-1"})], "extra cancel_order"),
    ([*GOLD[:2], ("cancel_order", {"order_id": "o-1"}), GOLD[3]], 'expected cancel_order {"order_id":"o-2"}'),
])
def test_wrong_actions_fail_with_the_reason(calls, says):
    verdict = judge(_task(), _episode(calls), write_tools=WRITES)
    assert not verdict.actions_match and says in verdict.reason, verdict.reason


def test_failed_calls_do_not_count_and_recovery_matches():
    calls = [GOLD[0], ("list_orders", {"customer_id": "c-x"}), *GOLD[1:]]
    assert judge(_task(), _episode(calls, errors={1}), write_tools=WRITES).success


def test_state_is_judged_first():
    verdict = judge(_task(), _episode(GOLD, final="other"), write_tools=WRITES)
    assert not verdict.success and not verdict.state_match and "differs from the gold state" in verdict.reason


def test_expected_outputs_must_be_told():
    task = _task(expected_outputs=["Oslo", "o-2"])
    assert judge(task, _episode(GOLD), write_tools=WRITES).success
    mute = judge(task, _episode(GOLD, closing="All done."), write_tools=WRITES)
    assert not mute.success and not mute.outputs_communicated and "'Oslo'" in mute.reason


def test_filter_and_evaluation_agree():
    task = _task(expected_outputs=["Oslo"])
    episodes = [_episode(GOLD), _episode([GOLD[1], GOLD[0], *GOLD[2:]]), _episode(GOLD[:3]),
                _episode(GOLD, closing="Bye."), _episode(GOLD, final="other")]
    for i, episode in enumerate(episodes):
        episode.trajectory_id = f"e{i}"
    kept = {t.trajectory_id for t in apply_filters(episodes, {"t1": task}, write_tools=WRITES).kept}
    succeeded = {t.trajectory_id for t in episodes if judge_episode(task, t, write_tools=WRITES)["success"]}
    assert kept == succeeded == {"e0", "e1"}
