"""Task construction by directed random walks on a domain's tool dependency graph (paper, step 4).

A walk starts at a random tool of the dependency graph and follows out-edges; each step's arguments
are filled from the previous step's output (the edge's linking field) and from the current state,
and the call is executed at once, so every gold action is known to succeed on the state it sees.
A step whose call fails is resampled a bounded number of times and then skipped in favour of
another successor; the walk ends where no successor works. The executed walk gives the task: a
templated user intent, the gold actions with their outputs, and the hash of the final state.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any, Iterable

from agentscaler_dagster.artifacts import read_model_jsonl, write_jsonl
from agentscaler_dagster.contracts import (
    DependencyEdge,
    GoldAction,
    Task,
    canonical_json,
    content_hash,
    state_hash,
)
from agentscaler_dagster.tasks.arguments import fill_arguments, index_values
from agentscaler_dagster.tasks.environment import EnvironmentLike, tool_specs_by_name
from agentscaler_dagster.tasks.scenario import build_task

# argument resamples per tool before the walk tries another successor
MAX_ARGUMENT_TRIES = 6
# successors tried per step before the walk ends
MAX_SUCCESSOR_TRIES = 4
# walks attempted per requested task (dead ends and duplicates cost attempts)
ATTEMPTS_PER_TASK = 30
# consecutive attempts without a new task after which a small graph counts as exhausted
MAX_BARREN_ATTEMPTS = 300


def sample_tasks(
    env: EnvironmentLike,
    *,
    n_tasks: int,
    seed: int,
    max_walk_length: int = 4,
    min_walk_length: int = 1,
    goal_level: bool = True,
) -> list[Task]:
    """Up to ``n_tasks`` distinct goal-level tasks from random walks; deterministic for ``seed``.

    Each walk becomes what a person would ask (``scenario.build_task``): entities by name, email or date,
    the lookups that find their ids first. ``goal_level=False`` keeps the raw walk with an intent that spells
    out every call (the tools and their arguments): for tests of the walk itself, not for training data.

    Fewer come back when the graph cannot yield that many distinct valid walks within
    ``n_tasks * ATTEMPTS_PER_TASK`` attempts.
    """
    if n_tasks < 0:
        raise ValueError(f"n_tasks must be >= 0, got {n_tasks}")
    if not 1 <= min_walk_length <= max_walk_length:
        raise ValueError(
            f"need 1 <= min_walk_length <= max_walk_length, got min_walk_length={min_walk_length}, "
            f"max_walk_length={max_walk_length}"
        )
    if not env.initial_states:
        raise ValueError(f"environment '{env.domain_id}' has no initial states to start tasks from")
    specs = tool_specs_by_name(env)
    graph = env.dependency_graph
    nodes = sorted(n for n in (graph.nodes if graph is not None else specs) if n in specs)
    if not nodes:
        raise ValueError(f"environment '{env.domain_id}': no tool of its dependency graph has a tool spec")
    state_ids = sorted(env.initial_states)
    rng = random.Random(seed)
    tasks: list[Task] = []
    seen: set[str] = set()
    barren = 0
    for _ in range(n_tasks * ATTEMPTS_PER_TASK):
        if len(tasks) >= n_tasks or barren >= MAX_BARREN_ATTEMPTS:
            break
        barren += 1
        state_id = rng.choice(state_ids)
        length = rng.randint(min_walk_length, max_walk_length)
        walk = _walk(env, specs, graph, nodes, state_id, length, rng)
        if len(walk.actions) < min_walk_length:
            continue
        task = build_task(env, state_id, walk.actions, rng) if goal_level else _make_task(env, specs, state_id, walk, rng)
        if task is None or task.task_id in seen:
            continue
        seen.add(task.task_id)
        tasks.append(task)
        barren = 0
    return tasks


def with_prompt_tools(tasks: list[Task], env: EnvironmentLike, *, max_tools: int, seed: int) -> list[Task]:
    """``tasks`` with ``prompt_tools`` set: what the agent of each is shown when its domain has more than
    ``max_tools`` tools (0: no limit, every task sees the whole domain).

    A prompt holds the task's own tools (its gold actions, and the tool a refusal task asks for) and
    distractors drawn from the domain's other tools, seeded by ``seed`` and the task, up to ``max_tools``;
    listed in the domain's order, so a tool's position says nothing about whether the task needs it. Domains
    clustered from large corpora reach 40-60 tools, whose schemas alone outrun the context a small model is
    trained on; a tau-bench domain shows 14-16.
    """
    if max_tools < 0:
        raise ValueError(f"max_tools must be >= 0 (0: every tool), got {max_tools}")
    names = [t["function"]["name"] for t in env.tools]
    if max_tools == 0 or len(names) <= max_tools:
        return tasks
    out = []
    for task in tasks:
        own = {a.name for a in task.gold_actions}
        if task.policy_rule and task.policy_rule.startswith("transition-"):
            own.add(task.policy_rule.removeprefix("transition-"))
        others = [n for n in names if n not in own]
        rng = random.Random(content_hash({"seed": seed, "task_id": task.task_id, "prompt_tools": max_tools}))
        shown = own | set(rng.sample(others, max(0, min(len(others), max_tools - len(own)))))
        out.append(task.model_copy(update={"prompt_tools": [n for n in names if n in shown]}))
    return out


class _Walk:
    def __init__(self, state: dict):
        self.state = state
        self.actions: list[GoldAction] = []
        self.outputs: list[Any] = []


def _walk(env, specs, graph, nodes, state_id, length, rng) -> _Walk:
    # a private copy: an environment whose tools change the state in place must not touch the original
    walk = _Walk(copy.deepcopy(env.initial_states[state_id]))
    candidates = [rng.choices(nodes, weights=[_start_weight(env, n) for n in nodes])[0]]
    previous: str | None = None
    while len(walk.actions) < length and candidates:
        done = False
        for tool in candidates[:MAX_SUCCESSOR_TRIES]:
            links = _link_fields(graph, previous, tool) if previous else set()
            sources = _link_sources(graph, previous, tool) if previous else {}
            if _step(env, specs[tool], walk, links, rng, sources):
                previous, done = tool, True
                break
        if not done:
            break
        succ = sorted(s for s in (graph.successors(previous) if graph is not None else []) if s in specs)
        rng.shuffle(succ)
        candidates = succ
    return walk


# walks start RECORD_START_WEIGHT times as often at a tool that names an existing record (by id or
# reference) as at one that does not: people mostly ask about what they already have, and those requests
# are the ones that need lookups
RECORD_START_WEIGHT = 3.0


def _start_weight(env, tool: str) -> float:
    binding = ((env.schema or {}).get("bindings") or {}).get(tool) or {}
    roles = {r.get("role") for r in (binding.get("params") or {}).values()}
    return RECORD_START_WEIGHT if roles & {"id", "ref"} else 1.0


def _step(env, spec, walk: _Walk, links: set[str], rng: random.Random, sources: dict[str, str] | None = None) -> bool:
    # top-level '_' keys are the runtime's bookkeeping (id counters), not records
    state_index = index_values({k: v for k, v in walk.state.items() if not str(k).startswith("_")})
    output_index = None
    if walk.outputs:
        last = walk.outputs[-1]
        output_index = index_values(last)
        if not isinstance(last, (dict, list)) and last is not None:
            # a tool that returns a bare id: the linking field is that value
            for field in links:
                output_index.setdefault(field, [last])
        # an edge matched by name similarity says which output field fills which differently named input
        for param, field in sorted((sources or {}).items()):
            if field in output_index:
                output_index.setdefault(param, output_index[field])
                links = links | {param}
    for _ in range(MAX_ARGUMENT_TRIES):
        arguments = fill_arguments(
            spec.parameters, state_index=state_index, output_index=output_index, link_fields=links, rng=rng,
            tool_name=spec.name,
        )
        result = env.call(walk.state, spec.name, arguments)
        if result.ok:
            walk.state = result.state
            walk.actions.append(GoldAction(name=spec.name, arguments=arguments))
            walk.outputs.append(result.output)
            return True
    return False


def _edge(graph, source: str, target: str) -> DependencyEdge | None:
    """The edge source -> target as the contract envgen writes it (None where there is none)."""
    if graph is None or not graph.has_edge(source, target):
        return None
    return DependencyEdge(source=source, target=target, **(graph.get_edge_data(source, target) or {}))


def _link_sources(graph, source: str, target: str) -> dict[str, str]:
    """Input parameter -> output field, for inputs an edge links to a differently named output."""
    edge = _edge(graph, source, target)
    return dict(edge.sources) if edge else {}


def _link_fields(graph, source: str, target: str) -> set[str]:
    """The fields an edge says flow from ``source``'s output into ``target``'s arguments."""
    edge = _edge(graph, source, target)
    return set(edge.fields) | {edge.field} if edge else set()


def _make_task(env, specs, state_id: str, walk: _Walk, rng: random.Random) -> Task:
    gold = [a.model_dump() for a in walk.actions]
    task_id = "t-" + content_hash(
        {"domain_id": env.domain_id, "initial_state_id": state_id, "gold_actions": gold}
    )[:16]
    read_only = all(specs[a.name].operation == "read" for a in walk.actions)
    return Task(
        task_id=task_id,
        domain_id=env.domain_id,
        user_intent=user_intent(walk.actions, rng),
        initial_state_id=state_id,
        initial_state_hash=state_hash(env.initial_states[state_id]),
        gold_actions=walk.actions,
        gold_state_hash=state_hash(walk.state),
        read_only=read_only,
        gold_outputs=json.loads(canonical_json(walk.outputs)),
    )


# ---- the user intent -------------------------------------------------------------------------

_OPENINGS = ("I'd like to {}", "I need to {}", "Could you help me {}", "Please {}", "Can you {}")
_JOINERS = (" and then ", ", then ", ", and after that ")


def humanise(name: str) -> str:
    """``cancel_order`` / ``cancelOrder`` -> ``cancel order``."""
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and name[i - 1].islower():
            out.append(" ")
        out.append(" " if ch in "_-." else ch.lower())
    return " ".join("".join(out).split())


def format_value(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"' if (" " in value or not value) else value
    return canonical_json(value)


def describe_action(name: str, arguments: dict) -> str:
    """One action in words, e.g. ``cancel order with order id o-12 and reason "no longer needed"``."""
    phrase = humanise(name)
    parts = [f"{humanise(k)} {format_value(arguments[k])}" for k in sorted(arguments)]
    if not parts:
        return phrase
    if len(parts) == 1:
        return f"{phrase} with {parts[0]}"
    return f"{phrase} with {', '.join(parts[:-1])} and {parts[-1]}"


def user_intent(actions: Iterable[GoldAction], rng: random.Random) -> str:
    """The request a user with these actions in mind would make, from seeded templates."""
    phrases = [describe_action(a.name, a.arguments) for a in actions]
    text = phrases[0]
    for phrase in phrases[1:]:
        text += rng.choice(_JOINERS) + phrase
    opening = rng.choice(_OPENINGS)
    return opening.format(text) + ("?" if opening.startswith(("Could", "Can")) else ".")


def summarise_tasks(tasks: list[Task]) -> dict:
    """Counts for metadata and reports: tasks, read-only share, walk lengths, tools used, and the shape of
    the goals (lookups needed, facts told only when asked, refusals, distinct intents)."""
    lengths: dict[int, int] = {}
    tools: dict[str, int] = {}
    for task in tasks:
        lengths[len(task.gold_actions)] = lengths.get(len(task.gold_actions), 0) + 1
        for action in task.gold_actions:
            tools[action.name] = tools.get(action.name, 0) + 1
    n = len(tasks)
    scenarios = [t.scenario for t in tasks if t.scenario is not None]
    openings: dict[str, set[str]] = {}
    for s in scenarios:
        for r in s.requests:
            openings.setdefault(r.kind, set()).add(" ".join(r.text.lower().split()[:3]))
    return {
        "n_tasks": n,
        "n_read_only": sum(t.read_only for t in tasks),
        # a lookup is a read call (get / list / search), as in the policy's "lookups you may use freely"
        "share_needing_lookup": round(sum(_has_lookup(t) for t in tasks) / n, 4) if n else 0.0,
        # stricter: a lookup that finds what a later call needs (an id the user does not know)
        "share_resolving_ids": round(sum(any(s.role == "lookup" for s in t.gold_steps) for t in tasks) / n, 4) if n else 0.0,
        "share_with_hidden_facts": round(sum(any(f.hidden for f in s.facts) for s in scenarios) / n, 4) if n else 0.0,
        "share_policy_refusals": round(sum(t.policy_rule is not None for t in tasks) / n, 4) if n else 0.0,
        "share_combined_requests": round(sum(len(s.requests) > 1 for s in scenarios) / n, 4) if n else 0.0,
        "distinct_intent_ratio": round(len({t.user_intent for t in tasks}) / n, 4) if n else 0.0,
        # how many different ways each kind of request opens ("could you cancel", "please cancel", ...)
        "phrasings_per_kind": {k: len(v) for k, v in sorted(openings.items())},
        "mean_walk_length": round(sum(k * v for k, v in lengths.items()) / n, 3) if n else 0.0,
        "walk_lengths": {str(k): lengths[k] for k in sorted(lengths)},
        "tool_calls_by_tool": {k: tools[k] for k in sorted(tools)},
    }


def _has_lookup(task: Task) -> bool:
    requests = task.scenario.requests if task.scenario else []
    return any(s.action >= 0 and (s.role == "lookup" or requests[s.request].kind in ("get", "list", "search"))
               for s in task.gold_steps)


# ---- files ----------------------------------------------------------------------------------


def write_tasks(tasks: Iterable[Task], path: str | Path) -> Path:
    """One task per line, sorted keys: equal tasks give equal bytes. Written atomically and sealed
    (``artifacts.write_jsonl``): ``read_tasks`` refuses the file if it is cut short or edited later."""
    return write_jsonl(path, (task.model_dump(mode="json") for task in tasks))


def read_tasks(path: str | Path) -> list[Task]:
    return read_model_jsonl(path, Task, "a valid task")

