"""Goal-level tasks, the scenario user, the oracle agent, the policy check of the judge, and leakage.

Real parts: the demo domain's environment package built by envgen and served by the sandbox; tasks from
the real sampler; the real simulators and the one judge. The last test runs the whole default episode
stage (`agentscaler episodes`) on the starter corpus's environments and scans every user message.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from agentscaler_dagster.contracts import ScenarioFact, ScenarioRequest, Trajectory, UserScenario
from agentscaler_dagster.filters import apply_filters, injected_error_scores
from agentscaler_dagster.judge import is_affirmative, judge
from agentscaler_dagster.rollout import (
    MISTAKE_KINDS,
    RECOVERED,
    STOP_MARKER,
    OracleAgentSimulator,
    ScenarioUserSimulator,
    run_episode,
    run_rollouts,
)
from agentscaler_dagster.sandbox import Environment
from agentscaler_dagster.sft import build_sft_records
from agentscaler_dagster.tasks import policy_tasks, sample_tasks, summarise_tasks, with_prompt_tools
from agentscaler_dagster.tasks.demo_domain import build_demo_package
from agentscaler_dagster.tasks.leakage import LeakDetector


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    package = build_demo_package(tmp_path_factory.mktemp("demo-env"), seed=0)
    with Environment.load(package) as environment:
        yield environment


@pytest.fixture(scope="module")
def tasks(env):
    return sample_tasks(env, n_tasks=30, seed=3) + policy_tasks(env, n_tasks=5, seed=3)


@pytest.fixture(scope="module")
def writes(env):
    return {s.name for s in env.tool_specs if s.operation == "write"}


def _ids(env) -> set[str]:
    return {k for state in env.initial_states.values() for coll, table in state.items()
            if isinstance(table, dict) and not coll.startswith("_") for k in table}


def test_tasks_are_goals_not_scripts(env, tasks):
    ids = _ids(env)
    tool_names = {t["function"]["name"] for t in env.tools}
    assert tasks and all(t.scenario is not None and t.scenario.requests for t in tasks)
    for task in tasks:
        said = {f.said for f in task.scenario.facts}
        for request in task.scenario.requests:
            assert not any(name in request.text for name in tool_names), request.text
            assert "{" not in request.text and "`" not in request.text
            # an id in a request is one the user was given (a fact), never one only the agent can see
            for token in re.findall(r"[\w-]+", request.text):
                assert token not in ids or token in said, (token, request.text)
        # the agent's side lines up with the gold actions, and every argument has a source
        acts = [s for s in task.gold_steps if s.action >= 0]
        assert [s.action for s in acts] == list(range(len(task.gold_actions)))
        for step in acts:
            assert set(step.sources) == set(task.gold_actions[step.action].arguments)
            for source in step.sources.values():
                kind, _, ref = source.partition(":")
                assert kind in ("fact", "output")
                if kind == "fact":
                    assert ref in {f.name for f in task.scenario.facts}
                else:
                    assert int(ref) < step.action, "an output comes from an earlier step"
    summary = summarise_tasks(tasks)
    assert summary["share_needing_lookup"] >= 0.6
    assert summary["share_with_hidden_facts"] >= 0.3
    assert 0 < summary["share_policy_refusals"] < 0.3
    assert summary["distinct_intent_ratio"] > 0.9


def test_same_seed_same_task_bytes(env):
    def digest(seed):
        data = [t.model_dump_json() for t in sample_tasks(env, n_tasks=10, seed=seed) + policy_tasks(env, n_tasks=3, seed=seed)]
        return hashlib.sha256("\n".join(data).encode()).hexdigest()

    assert digest(4) == digest(4) != digest(5)


def test_refusal_tasks_change_nothing_and_name_the_rule(env, tasks):
    refusals = [t for t in tasks if t.policy_rule]
    assert refusals
    for task in refusals:
        assert task.gold_state_hash == task.initial_state_hash and task.read_only
        assert any(r.forbidden for r in task.scenario.requests)
        refusal = next(s for s in task.gold_steps if s.action < 0)
        if task.policy_rule == "scope":  # no tool can do it at all
            assert refusal.attempt is None and not any("delete" in t["function"]["name"] for t in env.tools)
            continue
        assert task.policy_rule == f"transition-{refusal.attempt.name}"
        # the tool itself refuses the forbidden call
        attempt = refusal.attempt
        assert not env.call(env.initial_states[task.initial_state_id], attempt.name, attempt.arguments).ok
    assert {t.policy_rule for t in refusals} >= {"scope", "transition-cancel_order"}


def test_user_reveals_hidden_facts_only_when_asked_and_checks_confirmations():
    scenario = UserScenario(
        persona="You are Ada Lovelace, a customer; you are direct.",
        requests=[ScenarioRequest(text="Please cancel my order.", kind="transition"),
                  ScenarioRequest(text="What is the status of my order?", kind="get", turn=1)],
        facts=[ScenarioFact(name="order ID", value="order-7", said="order-7", hidden=True),
               ScenarioFact(name="reason", value="ordered_by_mistake", said="ordered by mistake", hidden=True)],
    )
    user = ScenarioUserSimulator(seed=0, scenario=scenario)
    first = user.start("")
    assert "Ada Lovelace" in first and "cancel my order" in first
    assert "order-7" not in first and "mistake" not in first
    ask = lambda text: user.reply([{"role": "assistant", "content": text}])  # noqa: E731
    assert ask("Could you tell me the order ID?") == "The order ID is order-7."
    assert ask("What is the reason?") == "The reason is ordered by mistake."
    assert ask("What is your date of birth?") in ("Sorry, I don't know that.", "I'm not sure; I don't have that.")
    assert ask("I'm about to cancel order with order ID order-7, reason no longer needed. Shall I go ahead?").startswith("No")
    assert is_affirmative(ask("I'm about to cancel order with order ID order-7, reason ordered by mistake. Shall I go ahead?"))
    assert "status" in ask("Done: the order is cancelled. Anything else?")  # the next request
    last = ask("The status is cancelled.")
    assert last.endswith(STOP_MARKER)


def test_error_free_oracle_episodes_all_pass_the_judge(env, tasks, writes):
    episodes = run_rollouts(tasks, env, lambda s: OracleAgentSimulator(s, error_rate=0.0), ScenarioUserSimulator,
                            trials=2, seed=0)
    by_id = {t.task_id: t for t in tasks}
    for e in episodes:
        task = by_id[e.task_id]
        verdict = judge(task, e, write_tools=writes)
        assert verdict.success, (verdict.reason, e.messages)
        users = [m["content"] for m in e.messages if m["role"] == "user"]
        assistant_text = " ".join(m["content"] or "" for m in e.messages if m["role"] == "assistant")
        assert STOP_MARKER in users[-1]
        if task.policy_rule:
            assert not any(c["function"]["name"] in writes for m in e.messages for c in m.get("tool_calls") or [])
            assert "policy" in assistant_text
        hidden = [f for f in task.scenario.facts if f.hidden and not re.search(r"(?<!\w)" + re.escape(f.said) + r"(?!\w)", users[0])]
        for fact in hidden:  # a hidden fact the agent needed was asked for before the user said it
            answer = f"the {fact.name} is {fact.said}".lower()
            told = next((k for k, m in enumerate(e.messages) if m["role"] == "user" and answer in m["content"].lower()), None)
            if told is not None:
                assert fact.name in (e.messages[told - 1]["content"] or "")
        # confirmation before every write the policy names
        for k, m in enumerate(e.messages):
            for c in m.get("tool_calls") or []:
                if c["function"]["name"] in task.confirm_tools:
                    asked = next(x for x in reversed(e.messages[:k]) if x["role"] == "user")
                    assert is_affirmative(asked["content"])


def test_prompt_tools_show_the_tasks_own_tools_among_seeded_distractors(env, tasks, writes):
    names = [t["function"]["name"] for t in env.tools]
    assert with_prompt_tools(tasks, env, max_tools=0, seed=0) == tasks
    assert with_prompt_tools(tasks, env, max_tools=len(names), seed=0) == tasks
    with pytest.raises(ValueError, match="max_tools must be >= 0"):
        with_prompt_tools(tasks, env, max_tools=-1, seed=0)
    shown = with_prompt_tools(tasks, env, max_tools=3, seed=0)
    assert shown == with_prompt_tools(tasks, env, max_tools=3, seed=0)
    assert shown != with_prompt_tools(tasks, env, max_tools=3, seed=1)
    for task in shown:
        own = {a.name for a in task.gold_actions}
        if task.policy_rule and task.policy_rule.startswith("transition-"):
            own.add(task.policy_rule.removeprefix("transition-"))
        assert own <= set(task.prompt_tools)
        assert len(task.prompt_tools) == max(3, len(own))
        assert task.prompt_tools == [n for n in names if n in task.prompt_tools]  # the domain's order

    episodes = run_rollouts(shown, env, lambda s: OracleAgentSimulator(s, error_rate=0.0), ScenarioUserSimulator,
                            trials=1, seed=0)
    by_id = {t.task_id: t for t in shown}
    for e in episodes:
        assert e.tool_names == by_id[e.task_id].prompt_tools
        assert judge(by_id[e.task_id], e, write_tools=writes).success
        assert {c["function"]["name"] for m in e.messages for c in m.get("tool_calls") or []} <= set(e.tool_names)
    records = build_sft_records(episodes, {env.domain_id: env.tools}, phase=1)
    assert [[t["function"]["name"] for t in r.tools] for r in records] == [e.tool_names for e in episodes]

    class CallsAnUnshownTool:
        name = "calls-an-unshown-tool"

        def act(self, messages, tools):
            if messages[-1]["role"] == "tool":
                return {"role": "assistant", "content": "done"}
            hidden = next(n for n in names if n not in {t["function"]["name"] for t in tools})
            return {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c0", "type": "function", "function": {"name": hidden, "arguments": "{}"}}]}

    task = next(t for t in shown if len(t.prompt_tools) < len(names))
    episode = run_episode(task, env, CallsAnUnshownTool(), ScenarioUserSimulator(seed=0), trial=0, max_turns=2)
    tool_reply = next(m for m in episode.messages if m["role"] == "tool")
    assert tool_reply["content"].startswith("Error: unknown tool"), tool_reply


@pytest.mark.parametrize("kind", MISTAKE_KINDS)
def test_each_injected_mistake_is_caught_by_the_judge(env, tasks, writes, kind):
    episodes = run_rollouts(tasks, env, lambda s: OracleAgentSimulator(s, error_rate=1.0, mistake_kinds=(kind,)),
                            ScenarioUserSimulator, trials=1, seed=0)
    injected = [e for e in episodes if kind in e.agent_mistakes]
    assert injected, f"no task of the demo domain allows a {kind} mistake"
    result = apply_filters(episodes, {t.task_id: t for t in tasks}, write_tools=writes)
    scores = injected_error_scores(episodes, result)
    assert scores["by_kind"][kind]["recall"] >= 0.9, scores["by_kind"][kind]
    assert scores["exact_match"]["false_positives"] == 0


def test_recovered_mistakes_are_kept():
    # a wrong argument the tool refused, then the right call: a correct trajectory (the paper keeps those)
    scores = injected_error_scores(
        [Trajectory(trajectory_id="a", task_id="t", domain_id="d", trial=0, messages=[], final_state_hash="",
                    termination="user_stop", backend="x", agent_mistakes=[RECOVERED])],
        apply_filters([], {}))
    assert scores["with_errors"] == 0


def _episode(task, messages, final):
    return Trajectory(trajectory_id="x", task_id=task.task_id, domain_id=task.domain_id, trial=0,
                      messages=messages, final_state_hash=final, termination="user_stop", backend="test")


def test_judge_policy_check(env, tasks, writes):
    write_task = next(t for t in tasks if not t.read_only and t.confirm_tools
                      and sum(a.name in t.confirm_tools for a in t.gold_actions) == 1)
    episode = run_episode(write_task, env, OracleAgentSimulator(0, error_rate=0.0), ScenarioUserSimulator(0), trial=0)
    assert judge(write_task, episode, write_tools=writes).success
    # the same calls without the yes before the write: a policy violation
    messages = [dict(m) for m in episode.messages]
    for k, m in enumerate(messages):
        if m["role"] == "user" and is_affirmative(m["content"]):
            messages[k] = {"role": "user", "content": "Hmm, let me think."}
    verdict = judge(write_task, _episode(write_task, messages, episode.final_state_hash), write_tools=writes)
    assert not verdict.success and not verdict.policy_followed and "explicit yes" in verdict.reason
    # a refusal task: trying the forbidden write fails even though the tool refused it
    refusal = next(t for t in tasks if t.policy_rule and t.policy_rule != "scope")
    attempt = next(s.attempt for s in refusal.gold_steps if s.attempt is not None)
    tried = run_episode(refusal, env, OracleAgentSimulator(0, error_rate=1.0, mistake_kinds=("policy_violation",)),
                        ScenarioUserSimulator(0), trial=0)
    assert any(c["function"]["name"] == attempt.name for m in tried.messages for c in m.get("tool_calls") or [])
    assert tried.final_state_hash == refusal.gold_state_hash
    verdict = judge(refusal, tried, write_tools=writes)
    assert not verdict.policy_followed and "forbids" in verdict.reason


def test_leak_detector_finds_what_a_user_cannot_know(env):
    detector = LeakDetector(env)
    some_id = sorted(_ids(env))[0]
    scenario = UserScenario(persona="p", requests=[], facts=[ScenarioFact(name="order ID", value="order-1", said="order-1")])
    assert detector.leaks("Please cancel my order from last week.", scenario) == []
    assert detector.leaks("My order is order-1.", scenario) == []
    assert detector.leaks('use `cancel_order` with {"order_id": "o-1"}', scenario) == [
        "a JSON object", "tool name 'cancel_order'", "argument name 'order_id'"]
    assert any("internal id" in x for x in detector.leaks(f"It is {some_id}.", None))
    assert any("internal id" in x for x in detector.leaks("It is order-999.", scenario)), "shaped like an id"


def test_default_episode_stage_leaks_nothing_and_meets_its_targets(starter_environments, tmp_path):
    """The full default run of the episode stage: every task and every user message of every domain scanned."""
    from agentscaler_dagster.assets.rollouts import RolloutConfig
    from agentscaler_dagster.assets.tasks import TaskConfig
    from agentscaler_dagster.resources import RolloutBackend
    from agentscaler_dagster.rollout.cli import DEFAULTS, run_episodes

    # the CLI's defaults are the assets' defaults: this is the default run
    task_config, rollout_config = TaskConfig(), RolloutConfig()
    assert (DEFAULTS["n_tasks"], DEFAULTS["policy_share"], DEFAULTS["max_walk_length"], DEFAULTS["seed"]) == (
        task_config.n_tasks, task_config.policy_share, task_config.max_walk_length, task_config.seed)
    assert (DEFAULTS["trials"], DEFAULTS["max_turns"]) == (rollout_config.trials, rollout_config.max_turns)
    assert DEFAULTS["error_rate"] == RolloutBackend().agent_error_rate
    report = run_episodes(starter_environments, tmp_path / "episodes")
    assert report["environments"] >= 10
    assert report["leaks"] == 0, report["leak_examples"]
    tasks = report["tasks"]
    assert tasks["share_needing_lookup"] >= 0.6 and tasks["share_with_hidden_facts"] >= 0.3
    assert 0.05 <= tasks["share_policy_refusals"] <= 0.15
    final = report["filter_scores"]["exact_match"]
    assert final["precision"] >= 0.95 and final["recall"] >= 0.95
    assert report["terminations"] == {"user_stop": report["episodes"]}
    # the written trajectories carry no hint syntax anywhere in the user's words
    for path in (tmp_path / "episodes").glob("*/trajectories.jsonl"):
        for line in path.read_text().splitlines():
            for m in json.loads(line)["messages"]:
                if m["role"] == "user":
                    assert "`" not in m["content"] and "{" not in m["content"]


def test_episodes_command_refuses_bad_input(tmp_path):
    from agentscaler_dagster.cli import main
    from agentscaler_dagster.rollout.cli import run_episodes

    with pytest.raises(ValueError, match="--error-rate must be in"):
        run_episodes(tmp_path, tmp_path / "out", error_rate=1.5)
    with pytest.raises(ValueError, match="--trials must be >= 1"):
        run_episodes(tmp_path, tmp_path / "out", trials=0)
    with pytest.raises(ValueError, match="no environment packages"):
        run_episodes(tmp_path, tmp_path / "out")
    assert main(["episodes", "--environments", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
