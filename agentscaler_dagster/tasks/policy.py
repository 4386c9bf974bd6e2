"""Tasks that test the domain policy: the user asks for what the policy forbids; the correct outcome is no write.

For every transition tool (cancel, close, suspend, ...) and a record whose status has no edge to the tool's
target (already cancelled, delivered, ...), the user asks for the transition. The gold actions are the
lookup an agent makes before refusing (the collection's ``get`` tool, where there is one); the gold final
state is the initial state; ``policy_rule`` names the rule (``policy.json``) the request breaks. The tool
itself refuses such a call (semantic validation checks it), so an agent that tries anyway changes nothing,
and one that reads the policy refuses without trying.
"""

from __future__ import annotations

import json
import random

from agentscaler_dagster.contracts import (
    GoldAction,
    Task,
    canonical_json,
    content_hash,
    state_hash,
)
from agentscaler_dagster.tasks.environment import EnvironmentLike, tool_specs_by_name
from agentscaler_dagster.tasks.sampling import user_intent


def policy_tasks(env: EnvironmentLike, *, n_tasks: int, seed: int) -> list[Task]:
    """Up to ``n_tasks`` forbidden-request tasks (see the module docstring); deterministic for ``seed``."""
    schema = env.schema or {}
    bindings, colls = schema.get("bindings", {}), schema.get("collections", {})
    specs = tool_specs_by_name(env)
    candidates = []
    for name in sorted(bindings):
        b = bindings[name]
        if b.get("kind") != "transition" or name not in specs:
            continue
        coll = colls[b["collection"]]
        allowed = (coll.get("transitions") or {}).get(b["status_value"], [])
        id_param = next((p for p, r in sorted(b["params"].items()) if r["role"] == "id"), None)
        getter = next((g for g, gb in sorted(bindings.items()) if gb["kind"] == "get"
                       and gb["collection"] == b["collection"] and g in specs), None)
        if id_param is None:
            continue
        for sid in sorted(env.initial_states):
            table = env.initial_states[sid].get(b["collection"]) or {}
            for key in sorted(table):
                if table[key].get(coll["status_field"]) not in allowed:
                    candidates.append((name, id_param, getter, sid, key))
    rng = random.Random(f"policy-tasks:{seed}")
    rng.shuffle(candidates)
    tasks = []
    for name, id_param, getter, sid, key in candidates[:n_tasks]:
        state = env.initial_states[sid]
        record = state[bindings[name]["collection"]][key]
        record_id = record.get(colls[bindings[name]["collection"]]["id_field"], key)
        gold, outputs = [], []
        if getter is not None:
            get_param = next(p for p, r in sorted(bindings[getter]["params"].items()) if r["role"] == "id")
            result = env.call(state, getter, {get_param: record_id})
            if not result.ok:
                continue
            gold, outputs = [GoldAction(name=getter, arguments={get_param: record_id})], [result.output]
        asked = GoldAction(name=name, arguments={id_param: record_id})
        task_id = "p-" + content_hash({"domain_id": env.domain_id, "state": sid, "asked": asked.model_dump()})[:16]
        tasks.append(Task(
            task_id=task_id, domain_id=env.domain_id, user_intent=user_intent([asked], rng),
            initial_state_id=sid, initial_state_hash=state_hash(state), gold_actions=gold,
            gold_state_hash=state_hash(state), read_only=True, gold_outputs=json.loads(canonical_json(outputs)),
            policy_rule=f"transition-{name}",
        ))
    return tasks
