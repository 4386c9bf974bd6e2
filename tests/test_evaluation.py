"""Evaluation: pass^k, episode judging, the evaluate loop, and the transformers agent.

Real parts: the pass^k arithmetic, the judge, the report and chart files, and a TransformersAgent over a
tiny random Gemma 3 with the real tokenizer and chat template. The environment and episode loop here are
a small stand-in written in this file (a dict state, two tools) so that the evaluation is tested apart
from the rollout stage; the pipeline passes the real ``run_episode``.
"""

from __future__ import annotations

import json
from math import comb
from pathlib import Path

import pytest

from agentscaler_dagster.contracts import GoldAction, Task, Trajectory, state_hash
from agentscaler_dagster.evaluation import (
    TransformersAgent,
    episode_seed,
    evaluate,
    judge_episode,
    mean_pass_hat_k,
    pass_hat_k,
)
from agentscaler_dagster.sft.base_model import prepare_base_model

# -- pass^k -----------------------------------------------------------------------------------------------


def test_pass_hat_k_formula():
    assert pass_hat_k(4, 4, 1) == 1.0 and pass_hat_k(4, 4, 4) == 1.0
    assert pass_hat_k(0, 4, 1) == 0.0
    assert pass_hat_k(3, 4, 1) == 0.75  # pass^1 is the success rate
    assert pass_hat_k(2, 4, 2) == pytest.approx(1 / 6)  # C(2,2)/C(4,2)
    assert pass_hat_k(3, 5, 2) == pytest.approx(comb(3, 2) / comb(5, 2)) == pytest.approx(0.3)
    assert pass_hat_k(1, 4, 2) == 0.0  # fewer successes than k: never all k
    # averaged over tasks, and never increasing in k
    values = [mean_pass_hat_k([4, 2, 0, 3], 4, k) for k in (1, 2, 3, 4)]
    assert values[0] == pytest.approx((1 + 0.5 + 0 + 0.75) / 4)
    assert values[3] == pytest.approx(0.25)
    assert values == sorted(values, reverse=True)
    with pytest.raises(ValueError, match="run at least k trials"):
        pass_hat_k(2, 2, 3)
    with pytest.raises(ValueError, match="successes must lie"):
        pass_hat_k(5, 4, 1)


# -- a small environment and episode loop -----------------------------------------------------------------


class CounterEnv:
    """Two tools over ``{"count": int}``: read it, or add to it."""

    def __init__(self, domain_id: str):
        self.domain_id = domain_id
        self.initial_states = {"s0": {"count": 0}}
        self.tools = [
            {"type": "function", "function": {"name": "get_count", "description": "Read the counter.",
                                              "parameters": {"type": "object", "properties": {}}}},
            {"type": "function", "function": {"name": "add", "description": "Add n to the counter.",
                                              "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}}}},
        ]

    def call(self, state: dict, name: str, arguments: dict) -> tuple[dict, object]:
        if name == "add":
            return {"count": state["count"] + int(arguments["n"])}, "ok"
        if name == "get_count":
            return state, state["count"]
        return state, f"Error: unknown tool '{name}'"


class OneShotUser:
    name = "one-shot-user"

    def __init__(self, task: Task, trial: int):
        self.task, self.trial = task, trial

    def start(self, user_intent: str) -> str:
        return user_intent

    def reply(self, messages: list[dict]) -> str | None:
        return None


def simple_episode(task, env, agent, user, *, trial, max_turns):
    state = dict(env.initial_states[task.initial_state_id])
    messages = [{"role": "system", "content": "Help the user."}, {"role": "user", "content": user.start(task.user_intent)}]
    for _ in range(max_turns):
        reply = agent.act(messages, env.tools)
        messages.append(reply)
        if not reply.get("tool_calls"):
            break
        for call in reply["tool_calls"]:
            state, result = env.call(state, call["function"]["name"], json.loads(call["function"]["arguments"]))
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)})
    return Trajectory(
        trajectory_id=f"{task.task_id}-{trial}", task_id=task.task_id, domain_id=task.domain_id, trial=trial,
        messages=messages, final_state_hash=state_hash(state), termination="user_stop", backend="test",
    )


def make_task(task_id: str, actions: list[tuple[str, dict]], final: dict, domain: str = "counter") -> Task:
    return Task(
        task_id=task_id, domain_id=domain, user_intent="Do it.", initial_state_id="s0",
        initial_state_hash=state_hash({"count": 0}),
        gold_actions=[GoldAction(name=n, arguments=a) for n, a in actions],
        gold_state_hash=state_hash(final), read_only=all(n == "get_count" for n, _ in actions),
    )


class GoldAgent:
    """Calls a task's gold actions, then answers; ``fail_trials`` lists the episodes it spoils."""

    def __init__(self, name: str, tasks: dict[str, Task], fail: set[tuple[str, int]] = frozenset()):
        self.name, self.tasks, self.fail = name, tasks, fail
        self.seeds: list[int] = []

    def reset(self, *, seed: int) -> None:
        self.seeds.append(seed)

    def act(self, messages, tools):
        if messages[-1]["role"] == "tool":
            return {"role": "assistant", "content": "Done."}
        task = self.tasks[messages[1]["content"].split("|")[0]]
        trial = int(messages[1]["content"].split("|")[1])
        calls = [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": a.name, "arguments": json.dumps({**a.arguments, **({"n": 99} if "n" in a.arguments else {})}
                                                                  if (task.task_id, trial) in self.fail else a.arguments)}}
            for i, a in enumerate(task.gold_actions)
        ]
        if (task.task_id, trial) in self.fail and not any("n" in a.arguments for a in task.gold_actions):
            calls = calls[:-1] or [{"id": "call_0", "type": "function", "function": {"name": "add", "arguments": '{"n": 0}'}}]
        return {"role": "assistant", "content": None, "tool_calls": calls}


class IntentUser(OneShotUser):
    def start(self, user_intent: str) -> str:
        return f"{self.task.task_id}|{self.trial}"


def test_judge_uses_state_and_exact_match_for_every_task():
    write = make_task("w", [("add", {"n": 2})], {"count": 2})
    read = make_task("r", [("get_count", {})], {"count": 0})
    env = CounterEnv("counter")
    agent = GoldAgent("gold", {"w": write, "r": read})
    good_w = simple_episode(write, env, agent, IntentUser(write, 0), trial=0, max_turns=3)
    verdict = judge_episode(write, good_w)
    assert (verdict["success"], verdict["state_match"], verdict["exact_match"]) == (True, True, True)
    # a read-only task: state always matches, only the exact match can fail it
    silent = Trajectory(trajectory_id="x", task_id="r", domain_id="counter", trial=0,
                        messages=[{"role": "user", "content": "?"}, {"role": "assistant", "content": "It is 0."}],
                        final_state_hash=state_hash({"count": 0}), termination="user_stop", backend="test")
    verdict = judge_episode(read, silent)
    assert (verdict["success"], verdict["state_match"], verdict["exact_match"]) == (False, True, False)
    # a write task reached by other calls fails: the writes must be the gold writes (one judge with the filter)
    detour = make_task("w2", [("add", {"n": 1}), ("add", {"n": 1})], {"count": 2})
    verdict = judge_episode(detour, good_w.model_copy(update={"task_id": "w2"}), write_tools={"add"})
    assert verdict["success"] is False and verdict["state_match"] is True and "write 0" in verdict["reason"]


def test_evaluate_computes_pass_hat_k_and_writes_report(tmp_path):
    tasks = [
        make_task("t-add", [("add", {"n": 2})], {"count": 2}),
        make_task("t-read", [("get_count", {})], {"count": 0}),
        make_task("t-lost", [("add", {"n": 1})], {"count": 1}, domain="nowhere"),
    ]
    by_id = {t.task_id: t for t in tasks}
    agents = {
        "base": GoldAgent("base", by_id, fail={("t-add", 0), ("t-add", 1), ("t-read", 2)}),
        "phase2": GoldAgent("phase2", by_id, fail={("t-add", 1)}),
    }

    def broken_episode(task, env, agent, user, *, trial, max_turns):
        if agent.name == "phase2" and task.task_id == "t-read" and trial == 0:
            raise RuntimeError("backend went away")
        return simple_episode(task, env, agent, user, trial=trial, max_turns=max_turns)

    report = evaluate(
        {"base": Path("/models/base"), "phase2": Path("/models/phase2")}, tasks, {"counter": CounterEnv("counter")},
        IntentUser, trials_k=3, seed=7, run_episode=broken_episode,
        agent_factory=lambda name, path: agents[name], out_dir=tmp_path,
    )
    base, tuned = report.models["base"], report.models["phase2"]
    assert base.successes_per_task == {"t-add": 1, "t-read": 2, "t-lost": 0}
    assert tuned.successes_per_task == {"t-add": 2, "t-read": 2, "t-lost": 0}
    assert base.pass_hat_k["1"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert base.pass_hat_k["2"] == pytest.approx((0 + 1 / 3 + 0) / 3)
    assert tuned.pass_hat_k["2"] == pytest.approx((1 / 3 + 1 / 3 + 0) / 3)
    assert base.pass_hat_k["3"] == tuned.pass_hat_k["3"] == 0.0
    assert report.delta_vs_baseline["phase2"]["1"] == pytest.approx(1 / 9)
    assert tuned.errors == 1 + 3 and base.errors == 3  # the raising episode and the domain with no environment
    lost = [e for e in report.episodes if e.task_id == "t-lost"]
    assert all(not e.success and "no environment for domain 'nowhere'" in e.error for e in lost)
    raised = [e for e in report.episodes if e.error and "backend went away" in e.error]
    assert len(raised) == 1 and raised[0].model == "phase2"
    # both models got the same per-episode seeds, in the same order
    assert agents["base"].seeds == agents["phase2"].seeds and len(set(agents["base"].seeds)) == 6

    saved = json.loads((tmp_path / "eval_report.json").read_text())
    assert saved["models"]["phase2"]["pass_hat_k"]["1"] == pytest.approx(tuned.pass_hat_k["1"])
    assert (tmp_path / "pass_hat_k.png").read_bytes()[:4] == b"\x89PNG"
    first = (tmp_path / "eval_report.json").read_bytes()
    evaluate({"base": Path("/models/base"), "phase2": Path("/models/phase2")}, tasks, {"counter": CounterEnv("counter")},
             IntentUser, trials_k=3, seed=7, run_episode=broken_episode,
             agent_factory=lambda name, path: GoldAgent(name, by_id, agents[name].fail), out_dir=tmp_path)
    assert _without_timings(first) == _without_timings((tmp_path / "eval_report.json").read_bytes())


def _without_timings(raw: bytes) -> dict:
    data = json.loads(raw)
    for episode in data["episodes"]:
        episode.pop("seconds")
    return data


# -- the transformers agent ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return prepare_base_model(tmp_path_factory.mktemp("tiny-eval") / "base", source="tiny", seed=1)


def test_transformers_agent_acts_and_evaluates_end_to_end(tiny_dir, tmp_path):
    agent = TransformersAgent(tiny_dir, max_new_tokens=6, seed=3)
    env = CounterEnv("counter")
    messages = [{"role": "system", "content": "Help."}, {"role": "user", "content": "Add two."}]
    reply = agent.act(messages, env.tools)
    # a random model writes noise: a text reply, never an exception
    assert reply["role"] == "assistant" and isinstance(reply["content"], str) and not reply.get("tool_calls")
    assert agent.last_generation["new_tokens"] <= 6
    assert agent.act(messages, env.tools) == reply  # greedy is deterministic
    assert agent.last_generation["prompt_tokens"] > 50  # the tools block is in the prompt

    # the parser the agent uses, on what a trained model would write
    text = 'Adding.\n<tool_call>{"name": "add", "arguments": {"n": 2}}</tool_call>'
    from agentscaler_dagster.sft.chat_template import parse_assistant_output

    parsed = parse_assistant_output(text, first_index=2)
    assert parsed["tool_calls"][0]["id"] == "call_2"
    assert json.loads(parsed["tool_calls"][0]["function"]["arguments"]) == {"n": 2}

    agent.temperature = 1.0
    agent.reset(seed=11)
    first = agent.act(messages, env.tools)
    agent.reset(seed=11)
    assert agent.act(messages, env.tools) == first  # sampling is fixed by the episode seed

    task = make_task("t-add", [("add", {"n": 2})], {"count": 2})
    seeds: list[int] = []

    def user_from_seed(seed):  # the one-argument factory form: a seed per (task, trial)
        seeds.append(seed)
        return OneShotUser(task, len(seeds))

    report = evaluate({"base": tiny_dir}, [task], {"counter": env}, user_from_seed, trials_k=2, seed=0,
                      run_episode=simple_episode, max_new_tokens=4, max_turns=2)
    assert seeds == [episode_seed(0, "t-add", 0), episode_seed(0, "t-add", 1)]
    assert report.models["base"].pass_hat_k == {"1": 0.0, "2": 0.0}  # noise does not add 2
    assert len(report.episodes) == 2 and all(e.error is None for e in report.episodes)


def test_bootstrap_interval_covers_the_mean_and_narrows_with_more_tasks():
    from agentscaler_dagster.evaluation.evaluate import bootstrap_interval

    few = [1, 0, 1, 1, 0]
    many = few * 40
    lo, hi = bootstrap_interval(few, 1, 1, seed=0)
    assert lo <= 0.6 <= hi and hi - lo > 0.3
    lo2, hi2 = bootstrap_interval(many, 1, 1, seed=0)
    assert lo2 <= 0.6 <= hi2 and hi2 - lo2 < (hi - lo) / 3
    assert bootstrap_interval(many, 1, 1, seed=0) == [lo2, hi2]  # seeded
    # paired: identical models differ by exactly zero; a model better on every task has an interval above zero
    assert bootstrap_interval(many, 1, 1, baseline=many) == [0.0, 0.0]
    better = bootstrap_interval([4] * 50, 4, 1, baseline=[2] * 25 + [3] * 25)
    assert better[0] > 0
    with pytest.raises(ValueError, match="same tasks"):
        bootstrap_interval([1, 0], 1, 1, baseline=[1])


def test_evaluate_runs_clonable_agents_concurrently_with_progress(tmp_path):
    import threading

    tasks = [make_task(f"t{i}", [("add", {"n": i})], {"count": i}) for i in range(1, 7)]
    by_id = {t.task_id: t for t in tasks}
    threads: set[str] = set()

    class ClonableGold(GoldAgent):
        def clone(self):
            return ClonableGold(self.name, self.tasks, self.fail)

        def act(self, messages, tools):
            threads.add(threading.current_thread().name)
            return super().act(messages, tools)

    seen = []
    kwargs = dict(trials_k=2, seed=3, run_episode=simple_episode,
                  agent_factory=lambda name, path: ClonableGold(name, by_id, {("t1", 0)}))
    one = evaluate({"base": Path("b"), "phase2": Path("p")}, tasks, {"counter": CounterEnv("counter")}, IntentUser, **kwargs)
    many = evaluate({"base": Path("b"), "phase2": Path("p")}, tasks, {"counter": CounterEnv("counter")}, IntentUser,
                    concurrency=4, progress=lambda done, total, s: seen.append((done, total)), **kwargs)
    assert len({t for t in threads if t.startswith("eval")}) > 1
    assert seen[-1] == (24, 24) and [d for d, _ in seen] == list(range(1, 25))
    assert many.models["base"].pass_hat_k == one.models["base"].pass_hat_k
    assert [e.model_dump(exclude={"seconds"}) for e in many.episodes] == [e.model_dump(exclude={"seconds"}) for e in one.episodes]
    assert set(many.models["base"].pass_hat_k_ci) == {"1", "2"} and "phase2" in many.delta_ci
