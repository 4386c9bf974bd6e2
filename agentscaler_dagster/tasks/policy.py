"""Tasks that test the domain policy: the user asks for what the policy forbids; the correct outcome is no write.

Besides forbidden transitions (below), a user may ask for what no tool can do (delete a record of a
collection without a delete tool); the policy's scope rule says to refuse that too.


For every transition tool (cancel, close, suspend, ...) and a record whose status has no edge to the tool's
target (already cancelled, delivered, ...), the user asks for the transition. The gold actions are the
lookup an agent makes before refusing (the collection's ``get`` tool, where there is one); the gold final
state is the initial state; ``policy_rule`` names the rule (``policy.json``) the request breaks. The tool
itself refuses such a call (semantic validation checks it), so an agent that tries anyway changes nothing,
and one that reads the policy refuses without trying. The request is told the way a person would
(``scenario.build_task``): the record by what the user knows of it, found by lookups first.
"""

from __future__ import annotations

import itertools
import random

from agentscaler_dagster.contracts import GoldAction, Task
from agentscaler_dagster.tasks.environment import EnvironmentLike, tool_specs_by_name
from agentscaler_dagster.tasks.scenario import build_scope_task, build_task


def policy_tasks(env: EnvironmentLike, *, n_tasks: int, seed: int) -> list[Task]:
    """Up to ``n_tasks`` forbidden-request tasks (see the module docstring); deterministic for ``seed``.

    Two kinds, drawn together: a transition the record's status does not allow (rule ``transition-<tool>``),
    and a request no tool can carry out - deleting a record of a collection that has no delete tool (rule
    ``scope``: act only through the tools).
    """
    schema = env.schema or {}
    bindings, colls = schema.get("bindings", {}), schema.get("collections", {})
    specs = tool_specs_by_name(env)
    candidates: list[tuple] = []
    for name in sorted(bindings):
        b = bindings[name]
        if b.get("kind") != "transition" or name not in specs:
            continue
        coll = colls[b["collection"]]
        allowed = (coll.get("transitions") or {}).get(b["status_value"], [])
        id_param = next((p for p, r in sorted(b["params"].items()) if r["role"] == "id"), None)
        if id_param is None:
            continue
        for sid in sorted(env.initial_states):
            table = env.initial_states[sid].get(b["collection"]) or {}
            for key in sorted(table):
                if table[key].get(coll["status_field"]) not in allowed:
                    candidates.append(("transition", name, id_param, sid, b["collection"], key))
    deletable = {b["collection"] for b in bindings.values() if b.get("kind") == "delete"}
    for coll_name in sorted(set(colls) - deletable):
        for sid in sorted(env.initial_states):
            for key in sorted(env.initial_states[sid].get(coll_name) or {}):
                candidates.append(("scope", None, None, sid, coll_name, key))
    rng = random.Random(f"policy-tasks:{seed}")
    # the two kinds take turns (forbidden transitions first): deletable records far outnumber them
    by_kind = {k: [c for c in candidates if c[0] == k] for k in ("transition", "scope")}
    for group in by_kind.values():
        rng.shuffle(group)
    candidates = [c for pair in itertools.zip_longest(*by_kind.values()) for c in pair if c is not None]
    tasks, seen = [], set()
    for kind, name, id_param, sid, coll_name, key in candidates:
        if len(tasks) >= n_tasks:
            break
        record = env.initial_states[sid][coll_name][key]
        record_id = record.get(colls[coll_name]["id_field"], key) if isinstance(record, dict) else key
        if kind == "scope":
            task = build_scope_task(env, sid, coll_name, record_id, rng)
        else:
            asked = GoldAction(name=name, arguments={id_param: record_id})
            task = build_task(env, sid, [], rng, forbidden=(asked, f"transition-{name}"), prefix="p")
        if task is None or task.task_id in seen:
            continue
        seen.add(task.task_id)
        tasks.append(task)
    return tasks


def refusal_count(share: float, n_walk_tasks: int) -> int:
    """How many refusal tasks make them ``share`` of all tasks, next to ``n_walk_tasks`` walk tasks."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"policy_share must be in [0, 1), got {share}")
    return round(share * n_walk_tasks / (1.0 - share)) if share else 0
