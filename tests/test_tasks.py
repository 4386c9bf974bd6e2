"""Task construction by random walks.

Real parts: an environment package built by envgen from the demo domain's five ToolSpecs
(generated schema, dependency graph, tool code and Faker-made initial states), loaded and served by
the sandbox runtime (a worker process); the real sampler and JSONL files. One test also drives the
sampler with a plain in-process environment to show that any object with the EnvironmentLike
attributes works.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass

import networkx as nx
import pytest

from agentscaler_dagster.contracts import ToolSource, ToolSpec, state_hash
from agentscaler_dagster.tasks import humanise, read_tasks, sample_tasks, summarise_tasks, write_tasks
from agentscaler_dagster.tasks.arguments import fill_arguments, index_values, synthesise
from agentscaler_dagster.sandbox import Environment
from agentscaler_dagster.tasks.demo_domain import build_demo_package


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return build_demo_package(tmp_path_factory.mktemp("demo-env"), seed=0)


@pytest.fixture(scope="module")
def env(package):
    with Environment.load(package) as environment:
        yield environment


@pytest.fixture(scope="module")
def tasks(env):
    return sample_tasks(env, n_tasks=40, seed=7)


def _file_hash(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_replaying_gold_actions_reproduces_gold_state_and_outputs(env, tasks):
    assert len(tasks) == 40
    for task in tasks:
        state = env.initial_states[task.initial_state_id]
        assert state_hash(state) == task.initial_state_hash
        outputs = []
        for action in task.gold_actions:
            result = env.call(state, action.name, action.arguments)
            assert result.ok, f"{task.task_id}: gold action {action.name} failed: {result.error}"
            state = result.state
            outputs.append(result.output)
        assert state_hash(state) == task.gold_state_hash
        assert outputs == task.gold_outputs


def test_same_seed_same_bytes_other_seed_other_bytes(package, tmp_path):
    # a fresh environment per run: nothing may leak between runs through the runtime
    paths = []
    for run, seed in enumerate((3, 3, 4)):
        with Environment.load(package) as environment:
            paths.append(write_tasks(sample_tasks(environment, n_tasks=15, seed=seed), tmp_path / f"{run}.jsonl"))
    assert _file_hash(paths[0]) == _file_hash(paths[1])
    assert _file_hash(paths[0]) != _file_hash(paths[2])


def test_read_only_flag_matches_operations_and_state(env, tasks):
    ops = {spec.name: spec.operation for spec in env.tool_specs}
    flags = {task.read_only for task in tasks}
    assert flags == {True, False}, "the demo domain should give both read-only and writing tasks"
    summary = summarise_tasks(tasks)
    assert summary["n_read_only"] == sum(t.read_only for t in tasks)
    assert sum(summary["walk_lengths"].values()) == len(tasks)
    assert sum(summary["tool_calls_by_tool"].values()) == sum(len(t.gold_actions) for t in tasks)
    for task in tasks:
        assert task.read_only == all(ops[a.name] == "read" for a in task.gold_actions)
        if task.read_only:
            assert task.gold_state_hash == task.initial_state_hash


def test_walks_follow_edges_respect_length_and_carry_linking_fields(env):
    graph = env.dependency_graph
    tasks = sample_tasks(env, n_tasks=25, seed=11, min_walk_length=2, max_walk_length=3, goal_level=False)
    assert tasks, "the demo graph has walks of length 2-3"
    linked = 0
    for task in tasks:
        assert 2 <= len(task.gold_actions) <= 3
        for prev, nxt, prev_out in zip(task.gold_actions, task.gold_actions[1:], task.gold_outputs):
            assert graph.has_edge(prev.name, nxt.name), f"{prev.name} -> {nxt.name} is not an edge"
            field = graph.edges[prev.name, nxt.name]["field"]
            values = index_values(prev_out).get(field, [])
            if field in nxt.arguments and values:
                assert nxt.arguments[field] in values, "the linking field must come from the previous output"
                linked += 1
    assert linked > 0


def test_task_ids_are_unique_and_content_addressed(env, tasks):
    ids = [t.task_id for t in tasks]
    assert len(ids) == len(set(ids))
    again = sample_tasks(env, n_tasks=40, seed=7)
    assert [t.task_id for t in again] == ids


def test_raw_walk_intent_names_every_action_and_its_values(env):
    # goal_level=False: the walk itself, its intent spelling out every call (never training data)
    for task in sample_tasks(env, n_tasks=20, seed=7, goal_level=False):
        for action in task.gold_actions:
            assert humanise(action.name) in task.user_intent
            for value in action.arguments.values():
                assert str(value) in task.user_intent


def test_write_read_roundtrip(tmp_path, tasks):
    path = write_tasks(tasks, tmp_path / "tasks.jsonl")
    assert read_tasks(path) == tasks
    (tmp_path / "bad.jsonl").write_text('{"task_id": "x"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        read_tasks(tmp_path / "bad.jsonl")


def test_bad_walk_bounds_are_refused(env):
    with pytest.raises(ValueError, match="min_walk_length"):
        sample_tasks(env, n_tasks=3, seed=0, min_walk_length=3, max_walk_length=2)


def test_argument_values_fit_the_schema():
    import random

    rng = random.Random(0)
    for _ in range(50):
        assert 2 <= synthesise({"type": "integer", "minimum": 2, "maximum": 4}, "n", rng) <= 4
        assert synthesise({"type": "string", "enum": ["a", "b"]}, "x", rng) in ("a", "b")
        assert synthesise({"type": "string", "format": "date"}, "day", rng)[:5] == "2025-"
    args = fill_arguments(
        {"type": "object", "properties": {"order_id": {"type": "string"}, "qty": {"type": "integer"}}, "required": ["order_id", "qty"]},
        state_index={"order_id": ["o-1", "o-2"], "qty": ["many"]},
        output_index=None,
        link_fields=set(),
        rng=random.Random(1),
    )
    assert isinstance(args["qty"], int), "a state value of the wrong type must not be used"


# ---- any EnvironmentLike works ---------------------------------------------------------------


@dataclass
class _Result:
    ok: bool
    output: object
    error: str | None
    state: dict


class _CounterEnv:
    """Two plain Python tools on a dict state: read a counter, add to it."""

    domain_id = "counter"

    def __init__(self):
        src = ToolSource(format="handwritten", file="test")
        self.tool_specs = [
            ToolSpec(tool_id="r", name="read_counter", description="Read a counter.", operation="read", source=src,
                     parameters={"type": "object", "properties": {"counter_id": {"type": "string"}}, "required": ["counter_id"]}),
            ToolSpec(tool_id="w", name="add_to_counter", description="Add to a counter.", operation="write", source=src,
                     parameters={"type": "object", "properties": {"counter_id": {"type": "string"},
                                 "amount": {"type": "integer", "minimum": 1, "maximum": 5}}, "required": ["counter_id", "amount"]}),
        ]
        self.tools = [s.openai_tool() for s in self.tool_specs]
        self.schema = {"counters": {"key": "counter_id"}}
        self.dependency_graph = nx.DiGraph()
        self.dependency_graph.add_edge("read_counter", "add_to_counter", field="counter_id")
        self.dependency_graph.add_edge("add_to_counter", "read_counter", field="counter_id")
        self.initial_states = {"only": {"counters": {"a": {"counter_id": "a", "value": 0}, "b": {"counter_id": "b", "value": 9}}}}

    def call(self, state, name, arguments):
        counters = state["counters"]
        if arguments.get("counter_id") not in counters:
            return _Result(False, None, f"Error: no counter {arguments.get('counter_id')}", state)
        if name == "read_counter":
            return _Result(True, dict(counters[arguments["counter_id"]]), None, state)
        new = copy.deepcopy(state)
        new["counters"][arguments["counter_id"]]["value"] += arguments["amount"]
        return _Result(True, {"counter_id": arguments["counter_id"]}, None, new)


def test_plain_python_environment_like_object():
    env = _CounterEnv()
    tasks = sample_tasks(env, n_tasks=10, seed=0, max_walk_length=3)
    assert len(tasks) == 10
    for task in tasks:
        state = env.initial_states[task.initial_state_id]
        for action in task.gold_actions:
            state = env.call(state, action.name, action.arguments).state
        assert state_hash(state) == task.gold_state_hash
