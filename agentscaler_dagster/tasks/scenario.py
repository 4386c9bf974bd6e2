"""Goal-level tasks: a random walk's actions turned into what a person would ask (tau-bench user scenarios).

A walk (``sampling.py``) gives gold actions that call tools with internal ids. A person does not know
those ids: they know their name and email, the date of a booking, the title of a track. This module
rewrites a walk into a task a person could give:

* every record an action names by id is referred to the way a person would, where the state allows:
  by a descriptive field a lookup tool can search by (a customer by email, a flight by date), or through
  its owner (an order among the customer's orders, picked by its date). The lookups that find the ids
  become gold actions before the action that needs them; where no lookup path exists, the id is a fact
  the user knows (a booking reference), as in tau-bench;
* a changing record is read before it is changed (a good agent checks the booking before cancelling);
* the values a request sets are facts; some are *hidden*: the user says them only when asked;
* each written or final read action is a request in plain language (several phrasings per tool kind;
  consecutive requests are sometimes asked together); a read request names what the user wants told
  (the expected outputs), a create asks for the new record's reference;
* ``GoldStep`` records, for the agent's side, where each argument comes from (a fact or an earlier
  output) and whether the policy wants the user's yes first.

Deterministic for the given RNG; the builder replays the gold actions and checks that the lookups it
inserts leave the final state unchanged.
"""

from __future__ import annotations

import copy
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

from agentscaler_dagster.contracts import (
    GoldAction,
    GoldStep,
    Policy,
    ScenarioFact,
    ScenarioOutput,
    ScenarioRequest,
    Task,
    UserScenario,
    canonical_json,
    content_hash,
    state_hash,
)
from agentscaler_dagster.envgen.policy import _PEOPLE
from agentscaler_dagster.tasks.arguments import index_values
from agentscaler_dagster.tasks.environment import EnvironmentLike, policy_of, tool_specs_by_name

READ_KINDS = frozenset({"get", "list", "search"})
# share of entity references kept as an id the user knows although a lookup path exists (variety)
ID_FACT_RATE = 0.2
# chance that a value the request sets is told only when the agent asks for it
HIDDEN_VALUE_RATE = 0.4
# chance that a reference the user knows by id is told only when asked ("what is your booking ID?")
HIDDEN_ID_RATE = 0.5
# chance that the next request is asked in the same message as the one before
COMBINE_RATE = 0.3
_PREFERRED_FIELDS = ("email", "name", "title", "full_name", "last_name", "phone", "phone_number", "code", "number")
_SKIP_FIELDS = frozenset({"last_action", "action_count"})
_ORDINALS = ("other", "third", "fourth", "fifth", "sixth")
_TRAITS = ("in a hurry", "polite and precise", "a little unsure about the details", "friendly and chatty",
           "direct and to the point")


# ---- words ------------------------------------------------------------------------------------


def words(name: str) -> str:
    """``booked_on`` / ``bookedOn`` -> ``booked on``; ``..._id`` -> ``... ID``."""
    out = re.sub(r"(?<=[a-z0-9])([A-Z])", r" \1", str(name)).replace("_", " ").replace("-", " ").lower().split()
    return " ".join("ID" if w == "id" else w for w in out)


def say(value: Any) -> str:
    """A value as a person says it: no JSON, no quotes."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        items = [say(v) for v in value]
        if not items:
            return "none"
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    if isinstance(value, dict):
        return ", ".join(f"{words(k)} {say(v)}" for k, v in sorted(value.items())) or "none"
    if value == "":
        return "none"
    if re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)+", value):
        return value.replace("_", " ")  # an enum value as a person says it
    return str(value)


def _plural(noun: str) -> str:
    if noun.endswith("y") and not noun.endswith(("ay", "ey", "oy", "uy")):
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


# ---- the domain, as the builder sees it -------------------------------------------------------


class _Domain:
    def __init__(self, env: EnvironmentLike):
        schema = env.schema or {}
        self.env = env
        self.bindings: dict = schema.get("bindings", {})
        self.colls: dict = schema.get("collections", {})
        self.specs = tool_specs_by_name(env)
        policy: Policy | None = policy_of(env)
        self.confirm_tools = sorted({t for r in (policy.rules if policy else []) if r.kind == "confirm" for t in r.tools
                                     if t in self.specs})
        self.rules = {r.rule_id: r for r in (policy.rules if policy else [])}
        self.people = {c for c, v in self.colls.items() if v["entity"].split("_")[-1] in _PEOPLE}

    def kind(self, tool: str) -> str:
        binding = self.bindings.get(tool)
        if binding:
            return binding["kind"]
        spec = self.specs.get(tool)
        return "get" if spec is not None and spec.operation == "read" else "other"

    def entity(self, coll: str) -> str:
        return words(self.colls[coll]["entity"])

    def getter(self, coll: str) -> tuple[str, str] | None:
        for name, b in sorted(self.bindings.items()):
            if b["kind"] == "get" and b["collection"] == coll and name in self.specs:
                pid = next((p for p, r in sorted(b["params"].items()) if r["role"] == "id"), None)
                required = set(self.specs[name].parameters.get("required") or [])
                if pid and required <= {pid}:
                    return name, pid
        return None

    def lookups(self, coll: str) -> list[tuple[str, dict]]:
        """List/search tools over ``coll`` whose required parameters are all filters."""
        out = []
        for name, b in sorted(self.bindings.items()):
            if b["kind"] in ("list", "search") and b["collection"] == coll and name in self.specs:
                out.append((name, b["params"]))
        return out

    def collection_of_id(self, state: dict, value: Any) -> str | None:
        if not isinstance(value, str):
            return None
        for coll in sorted(self.colls):
            if isinstance(state.get(coll), dict) and value in state[coll]:
                return coll
        return None

    def descriptive_fields(self, coll: str, record: dict) -> list[str]:
        """Fields a person would know a record by (strings, not ids, not enums), preferred ones first."""
        props = (self.colls[coll].get("record") or {}).get("properties") or {}
        refs = set(self.colls[coll].get("references") or {})
        found = []
        for f, value in record.items():
            sub = props.get(f) or {}
            if f in _SKIP_FIELDS or f in refs or f == self.colls[coll]["id_field"] or f.endswith("_id") or sub.get("enum"):
                continue
            if "x-ref" in sub or not isinstance(value, str) or not 3 <= len(value) <= 40 or sub.get("format") == "date-time":
                continue
            if len(value.split()) > 5 or value.rstrip()[-1:] in ".!?":
                continue  # a sentence, not something a person names a record by
            found.append(f)
        rank = {f: i for i, f in enumerate(_PREFERRED_FIELDS)}
        return sorted(found, key=lambda f: (min((rank[p] for p in rank if f == p or f.endswith("_" + p)), default=99), f))


def _records(output: Any) -> list[dict]:
    if isinstance(output, list):
        return [r for r in output if isinstance(r, dict)]
    if isinstance(output, dict):
        lists = [v for v in output.values() if isinstance(v, list) and all(isinstance(x, dict) for x in v)]
        return lists[0] if len(lists) == 1 and lists[0] else [output]
    return []


# ---- building -----------------------------------------------------------------------------------


@dataclass
class _Reference:
    phrase: str  # how the user names the record ("the booking booked on 2025-11-03")
    source: str  # where the agent gets the id: 'fact:<name>' or 'output:<step>'


@dataclass
class _Build:
    dom: _Domain
    state: dict
    rng: random.Random
    actions: list[GoldAction] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)
    steps: list[GoldStep] = field(default_factory=list)
    facts: dict[str, ScenarioFact] = field(default_factory=dict)
    refs: dict[str, _Reference] = field(default_factory=dict)  # record id -> how it is known
    request: int = 0

    def fact(self, name: str, value: Any, hidden: bool) -> str:
        """The fact ``name`` = ``value``; a second value of the same kind is the "other ...", then "third ..."."""
        for k, candidate in enumerate([name] + [f"{w} {name}" for w in _ORDINALS]):
            if candidate not in self.facts:
                self.facts[candidate] = ScenarioFact(name=candidate, value=value, said=say(value), hidden=hidden,
                                                     request=self.request)
                return f"fact:{candidate}"
            if self.facts[candidate].value == value:
                return f"fact:{candidate}"
        raise _Unusable(f"more than {len(_ORDINALS) + 1} values for '{name}'")

    def call(self, name: str, arguments: dict, role: str, sources: dict[str, str]) -> Any:
        result = self.dom.env.call(self.state, name, arguments)
        if not result.ok:
            raise _Unusable(f"{name} failed on replay: {result.error}")
        self.state = result.state
        self.actions.append(GoldAction(name=name, arguments=arguments))
        self.outputs.append(json.loads(canonical_json(result.output)))
        spec_write = self.dom.specs[name].operation == "write"
        self.steps.append(GoldStep(
            action=len(self.actions) - 1, request=self.request, role=role, sources=sources,
            confirm=spec_write and name in self.dom.confirm_tools, describe=describe(self.dom, name, arguments),
        ))
        return result.output

    def try_lookup(self, name: str, arguments: dict) -> Any | None:
        result = self.dom.env.call(self.state, name, arguments)
        return result.output if result.ok else None


class _Unusable(Exception):
    """The walk cannot be told as a goal (a replayed call failed)."""


def describe(dom: _Domain, name: str, arguments: dict) -> str:
    """An action in plain words, as the agent says it: ``cancel booking booking-2 (cancel reason: medical)``."""
    phrase = words(name)
    parts = [f"{words(k)} {say(v)}" for k, v in sorted(arguments.items())]
    return phrase + (" with " + ", ".join(parts) if parts else "")


def _resolve(b: _Build, coll: str, record_id: str, depth: int = 0) -> _Reference:
    """How the user names record ``record_id`` of ``coll``; adds the lookups that find it."""
    if record_id in b.refs:
        return b.refs[record_id]
    dom, rng = b.dom, b.rng
    record = (b.state.get(coll) or {}).get(record_id)
    entity = dom.entity(coll)
    if isinstance(record, dict) and rng.random() >= ID_FACT_RATE:
        reference = (_by_field(b, coll, record_id, record) or _by_listing(b, coll, record_id, record)
                     or (_by_owner(b, coll, record_id, record, depth) if depth < 1 else None))
        if reference is not None:
            b.refs[record_id] = reference
            return reference
    hidden = rng.random() < HIDDEN_ID_RATE
    name = f"{entity} ID"
    source = b.fact(name, record_id, hidden)
    mine = "my " if coll in dom.people or _owned(dom, coll) else "the "
    noun = f"{entity} account" if coll in dom.people else entity
    reference = _Reference(phrase=f"{mine}{noun}" + ("" if hidden else f" ({entity} ID {record_id})"), source=source)
    b.refs[record_id] = reference
    return reference


def _owned(dom: _Domain, coll: str) -> bool:
    return any(dom.colls.get(t) and t in dom.people for t in (dom.colls[coll].get("references") or {}).values())


def _contains_id(output: Any, id_field: str, record_id: str) -> bool:
    index = index_values(output)
    return record_id in index.get(id_field, []) or record_id in index.get("id", [])


def _by_field(b: _Build, coll: str, record_id: str, record: dict) -> _Reference | None:
    """A lookup that finds the record from one descriptive field the user knows (email, name, title)."""
    dom = b.dom
    id_field = dom.colls[coll]["id_field"]
    table = b.state.get(coll) or {}
    for f in dom.descriptive_fields(coll, record):
        if sum(1 for r in table.values() if isinstance(r, dict) and r.get(f) == record[f]) != 1:
            continue
        for tool, params in dom.lookups(coll):
            required = set(dom.specs[tool].parameters.get("required") or [])
            for param, role in sorted(params.items()):
                if not ((role["role"] == "field" and role.get("field") == f) or role["role"] == "query"):
                    continue
                if required - {param}:
                    continue
                arguments = {param: record[f]}
                output = b.try_lookup(tool, arguments)
                if output is None or len(_records(output)) != 1 or not _contains_id(output, id_field, record_id):
                    continue
                source = b.fact(f"{dom.entity(coll)} {words(f)}" if dom.entity(coll) not in words(f) else words(f),
                                record[f], hidden=False)
                b.call(tool, arguments, "lookup", {param: source})
                phrase = f"{'my' if coll in dom.people else 'the'} {dom.entity(coll)} with {words(f)} {say(record[f])}"
                if coll in dom.people:
                    phrase = f"my {dom.entity(coll)} account ({words(f)} {say(record[f])})"
                return _Reference(phrase=phrase, source=f"output:{len(b.actions) - 1}")
    return None


def _by_listing(b: _Build, coll: str, record_id: str, record: dict) -> _Reference | None:
    """List the whole collection and pick the record by a field the user knows ("the ticket about the printer")."""
    dom = b.dom
    id_field = dom.colls[coll]["id_field"]
    for tool, _ in dom.lookups(coll):
        if dom.specs[tool].parameters.get("required"):
            continue
        output = b.try_lookup(tool, {})
        listed = _records(output)
        if output is None or not _contains_id(output, id_field, record_id):
            continue
        distinct = [f for f in dom.descriptive_fields(coll, record) if sum(1 for r in listed if r.get(f) == record[f]) == 1]
        if not distinct:
            continue
        b.fact(f"{dom.entity(coll)} {words(distinct[0])}", record[distinct[0]], hidden=False)
        b.call(tool, {}, "lookup", {})
        mine = "my" if coll in dom.people or _owned(dom, coll) else "the"
        return _Reference(phrase=f"{mine} {dom.entity(coll)} with {words(distinct[0])} {say(record[distinct[0]])}",
                          source=f"output:{len(b.actions) - 1}")
    return None


def _by_owner(b: _Build, coll: str, record_id: str, record: dict, depth: int) -> _Reference | None:
    """Find the record among its owner's records (an order among the customer's orders), told apart by a field."""
    dom = b.dom
    id_field = dom.colls[coll]["id_field"]
    for tool, params in dom.lookups(coll):
        required = set(dom.specs[tool].parameters.get("required") or [])
        for param, role in sorted(params.items()):
            owner_coll = role.get("ref")
            if role["role"] != "ref" or not owner_coll or owner_coll not in dom.colls or required - {param}:
                continue
            owner_id = record.get(role.get("field") or param)
            if not isinstance(owner_id, str) or owner_id not in (b.state.get(owner_coll) or {}):
                continue
            output = b.try_lookup(tool, {param: owner_id})
            listed = _records(output)
            if output is None or not _contains_id(output, id_field, record_id):
                continue
            distinct = [f for f in dom.descriptive_fields(coll, record)
                        if sum(1 for r in listed if r.get(f) == record[f]) == 1]
            if not distinct and len(listed) != 1:
                continue
            owner = _resolve(b, owner_coll, owner_id, depth + 1)
            if distinct:
                b.fact(f"{dom.entity(coll)} {words(distinct[0])}", record[distinct[0]], hidden=False)
            b.call(tool, {param: owner_id}, "lookup", {param: owner.source})
            detail = f" with {words(distinct[0])} {say(record[distinct[0]])}" if distinct else ""
            return _Reference(phrase=f"the {dom.entity(coll)}{detail} on {owner.phrase}",
                              source=f"output:{len(b.actions) - 1}")
    return None


def _id_like(dom: _Domain, tool: str, param: str) -> tuple[str, str] | None:
    """(role, collection) when parameter ``param`` of ``tool`` names a record by id."""
    binding = dom.bindings.get(tool) or {}
    role = (binding.get("params") or {}).get(param) or {}
    if role.get("role") == "id":
        return "id", binding["collection"]
    if role.get("role") == "ref" and role.get("ref") in dom.colls and not role.get("many"):
        return "ref", role["ref"]
    return None


def _from_outputs(outputs: list[Any], value: Any) -> int | None:
    """The latest earlier output that holds ``value`` (an id the agent can read off it)."""
    if not isinstance(value, str):
        return None
    for j in range(len(outputs) - 1, -1, -1):
        out = outputs[j]
        if out == value or any(value in vs for vs in index_values(out).values()):
            return j
    return None


_TEMPLATES = {
    "transition": ("I'd like to {verb} {ref}{details}.", "Please {verb} {ref}{details}.",
                   "Could you {verb} {ref}{details}?", "I need to {verb} {ref}{details}."),
    "update": ("I need to update {ref}{details}.", "Please change {ref}{details}.",
               "Could you make a change to {ref}{details}?", "I'd like to modify {ref}{details}."),
    "create": ("I'd like to set up a new {entity}{details}.", "Please create a {entity}{details}.",
               "Can you add a new {entity}{details}?", "I want to make a new {entity}{details}."),
    "delete": ("Please delete {ref}{details}.", "I want to remove {ref}{details}.",
               "Could you delete {ref}{details} for me?", "I'd like {ref} deleted{details}."),
    "get": ("What is the {outputs} of {ref}?", "Could you tell me the {outputs} of {ref}?",
            "I'd like to know the {outputs} of {ref}.", "Can you look up the {outputs} of {ref} for me?"),
    "list": ("How many {entities} are there{filters}?", "Could you check how many {entities} there are{filters}?",
             "I'd like to know how many {entities} there are{filters}.", "Can you count the {entities}{filters} for me?"),
    "action": ("I'd like to {verb} {ref}{details}.", "Please {verb} {ref}{details} for me.",
               "Could you {verb} {ref}{details}?", "I want to {verb} {ref}{details}."),
    "other": ("I need you to {verb} {ref}{details}.", "Please {verb} {ref}{details}.",
              "Could you {verb} {ref}{details}?", "Can you {verb} {ref}{details}?"),
}
_TEMPLATES["search"] = _TEMPLATES["get"]
_TEMPLATES["sub_add"] = _TEMPLATES["other"]
_TEMPLATES["sub_remove"] = _TEMPLATES["other"]


def _outputs_for(dom: _Domain, tool: str, output: Any, facts: dict[str, ScenarioFact], rng: random.Random) -> list[ScenarioOutput]:
    kind = dom.kind(tool)
    known = {f.said.lower() for f in facts.values()}
    if kind == "list" or (isinstance(output, list)):
        records = _records(output)
        coll = (dom.bindings.get(tool) or {}).get("collection")
        noun = _plural(dom.entity(coll)) if coll in dom.colls else "results"
        return [ScenarioOutput(name=f"number of {noun}", value=str(len(records)))]
    if isinstance(output, dict):
        candidates = []
        for k, v in sorted(output.items()):
            if k in _SKIP_FIELDS or k == "id" or k.endswith("_id") or isinstance(v, (bool, dict, list)) or v is None:
                continue
            text = say(v)
            if len(text) < 3 or text.lower() in known:
                continue
            candidates.append(ScenarioOutput(name=words(k), value=text))
        rng.shuffle(candidates)
        return sorted(candidates[:2], key=lambda o: o.name)
    if isinstance(output, (int, float, str)) and not isinstance(output, bool) and len(say(output)) >= 2:
        return [ScenarioOutput(name=words(tool).replace("get ", "", 1), value=say(output))]
    return []


def _created_id(dom: _Domain, tool: str, output: Any, state_before: dict) -> ScenarioOutput | None:
    binding = dom.bindings.get(tool) or {}
    coll = binding.get("collection")
    if coll not in dom.colls or not isinstance(output, dict):
        return None
    new = output.get(dom.colls[coll]["id_field"])
    if isinstance(new, str) and new not in (state_before.get(coll) or {}):
        return ScenarioOutput(name=f"new {dom.entity(coll)} ID", value=new)
    return None


def build_task(env: EnvironmentLike, state_id: str, walk: list[GoldAction], rng: random.Random, *,
               forbidden: tuple[GoldAction, str] | None = None, prefix: str = "t") -> Task | None:
    """The goal-level task of a walk (see the module docstring); None when it cannot be told as one.

    ``forbidden`` is ``(action, rule_id)``: a request the policy forbids; the walk holds the lookups only,
    the gold outcome is a refusal and no write.
    """
    dom = _Domain(env)
    initial = env.initial_states[state_id]
    b = _Build(dom=dom, state=copy.deepcopy(initial), rng=rng)
    walk = [_without_paging(dom, a) for a in walk] + ([forbidden[0]] if forbidden else [])
    # which walk outputs feed later actions: those reads are lookups, not requests
    replay_state, replay_outputs, feeds = copy.deepcopy(initial), [], set()
    for i, action in enumerate(walk):
        for param, value in action.arguments.items():
            j = _from_outputs(replay_outputs, value) if _id_like(dom, action.name, param) else None
            if j is not None:
                feeds.add(j)
        if forbidden and i == len(walk) - 1:
            break
        result = env.call(replay_state, action.name, action.arguments)
        if not result.ok:
            return None
        replay_state = result.state
        replay_outputs.append(result.output)
    requests: list[ScenarioRequest] = []
    acted: set = set()  # ids of the records earlier requests acted on or created
    walk_to_step: dict[int, int] = {}
    try:
        for i, action in enumerate(walk):
            is_forbidden = bool(forbidden) and i == len(walk) - 1
            kind = dom.kind(action.name)
            is_read = dom.specs[action.name].operation == "read"
            role = "lookup" if (is_read and i in feeds and not is_forbidden) else "act"
            sources: dict[str, str] = {}
            refs: list[str] = []
            details: list[str] = []
            main_ref = None
            for param in sorted(action.arguments):
                value = action.arguments[param]
                linked = _id_like(dom, action.name, param)
                if linked is not None:
                    j = _from_outputs(replay_outputs[:i], value)
                    if j is not None and j in walk_to_step:
                        sources[param] = f"output:{walk_to_step[j]}"
                        # the record the user just dealt with is "that booking"; one found on the way is "the/my booking"
                        that = (f"that {dom.entity(linked[1])}" if value in acted else
                                f"{'my' if _owned(dom, linked[1]) else 'the'} {dom.entity(linked[1])}")
                        if linked[0] == "id":
                            main_ref = that
                        else:
                            refs.append(that)
                        continue
                    coll = linked[1]
                    if value in (b.state.get(coll) or {}):
                        ref = _resolve(b, coll, value)
                        sources[param] = ref.source
                        if linked[0] == "id":
                            main_ref = ref.phrase
                        else:
                            refs.append(ref.phrase)
                        continue
                hidden = role == "act" and not is_read and rng.random() < HIDDEN_VALUE_RATE
                name = words(param)
                sources[param] = b.fact(name, value, hidden)
                fact = b.facts[sources[param][5:]]
                if not fact.hidden:
                    details.append(f"{fact.name} {fact.said}")
            # before a write, every record it names on the user's word is read first (the record to change, the
            # customer it is for): a good agent checks what it was told before acting on it
            if not is_read:
                for pid in sorted(action.arguments):
                    linked = _id_like(dom, action.name, pid)
                    if linked is None or not sources.get(pid, "").startswith("fact:"):
                        continue
                    getter = dom.getter(linked[1])
                    record_id = action.arguments[pid]
                    if getter is None or record_id not in (b.state.get(linked[1]) or {}):
                        continue
                    if not any(a.name == getter[0] and a.arguments.get(getter[1]) == record_id for a in b.actions):
                        b.call(getter[0], {getter[1]: record_id}, "lookup", {getter[1]: sources[pid]})
            if role == "lookup":
                b.call(action.name, action.arguments, "lookup", sources)
                walk_to_step[i] = len(b.actions) - 1
                continue
            before = b.state
            if is_forbidden:
                b.steps.append(GoldStep(action=-1, request=b.request, role="act", sources=sources, attempt=action,
                                        confirm=False, describe=describe(dom, action.name, action.arguments)))
                status = _status_of(dom, action, b.state)
                outputs = [ScenarioOutput(name="current status", value=status)] if status else []
            else:
                output = b.call(action.name, action.arguments, "act", sources)
                walk_to_step[i] = len(b.actions) - 1
                if is_read:
                    outputs = _outputs_for(dom, action.name, output, b.facts, rng)
                else:
                    created = _created_id(dom, action.name, output, before)
                    outputs = [created] if created else []
            acted |= {v for v in action.arguments.values() if isinstance(v, str)}
            acted |= {o.value for o in outputs if o.name.endswith(" ID")}
            text = _request_text(dom, action.name, kind, main_ref, refs, details, outputs, rng)
            requests.append(ScenarioRequest(text=text, kind=kind, outputs=outputs, forbidden=is_forbidden))
            b.request += 1
    except _Unusable:
        return None
    if not requests:
        return None
    if state_hash(b.state) != state_hash(replay_state):
        return None  # a lookup changed something: not a lookup
    turn = 0
    scenario_requests = []
    for k, request in enumerate(requests):
        if k and rng.random() >= COMBINE_RATE:
            turn += 1
        scenario_requests.append(request.model_copy(update={"turn": turn}))
    persona = _persona(dom, initial, b, rng)
    scenario = UserScenario(persona=persona, requests=scenario_requests, facts=list(b.facts.values()))
    gold = [a.model_dump() for a in b.actions]
    task_id = f"{prefix}-" + content_hash({"domain_id": env.domain_id, "initial_state_id": state_id, "gold_actions": gold,
                                          "forbidden": forbidden[0].model_dump() if forbidden else None})[:16]
    return Task(
        task_id=task_id, domain_id=env.domain_id, user_intent=scenario.goal(), initial_state_id=state_id,
        initial_state_hash=state_hash(initial), gold_actions=b.actions, gold_state_hash=state_hash(b.state),
        read_only=all(dom.specs[a.name].operation == "read" for a in b.actions),
        gold_outputs=json.loads(canonical_json(b.outputs)),
        policy_rule=forbidden[1] if forbidden else None,
        expected_outputs=[o.value for r in scenario_requests for o in r.outputs],
        scenario=scenario, gold_steps=b.steps, confirm_tools=dom.confirm_tools,
    )


def _without_paging(dom: _Domain, action: GoldAction) -> GoldAction:
    """The action without optional limit/offset arguments: paging is the agent's business, not the user's."""
    params = (dom.bindings.get(action.name) or {}).get("params") or {}
    required = set(dom.specs[action.name].parameters.get("required") or [])
    kept = {k: v for k, v in action.arguments.items()
            if k in required or (params.get(k) or {}).get("role") not in ("limit", "offset")}
    return action if kept == action.arguments else GoldAction(name=action.name, arguments=kept)


def _status_of(dom: _Domain, action: GoldAction, state: dict) -> str | None:
    binding = dom.bindings.get(action.name) or {}
    coll = dom.colls.get(binding.get("collection", ""))
    if not coll or not coll.get("status_field"):
        return None
    pid = next((p for p, r in sorted(binding["params"].items()) if r["role"] == "id"), None)
    record = (state.get(binding["collection"]) or {}).get(action.arguments.get(pid))
    status = record.get(coll["status_field"]) if isinstance(record, dict) else None
    return say(status) if status is not None else None


def _request_text(dom: _Domain, tool: str, kind: str, main_ref: str | None, refs: list[str], details: list[str],
                  outputs: list[ScenarioOutput], rng: random.Random) -> str:
    binding = dom.bindings.get(tool) or {}
    coll = binding.get("collection")
    entity = dom.entity(coll) if coll in dom.colls else "record"
    verb = binding.get("verb") or ""
    if kind in ("transition", "action") and verb:
        verb_phrase = verb
    else:
        verb_phrase = words(tool)
    ref = main_ref or (refs.pop(0) if refs and kind not in ("create", "list", "other", "sub_add", "sub_remove") else "")
    if kind == "action" and not ref:
        ref = f"a {entity}"
    extra = [f"for {r}" for r in refs] + ([("with " if kind != "list" else "") + " and ".join(details)] if details else [])
    detail_text = (" " + ", ".join(extra)) if extra else ""
    template = rng.choice(_TEMPLATES.get(kind, _TEMPLATES["other"]))
    if kind in ("get", "search") and not outputs:
        template = rng.choice(("Could you look up {ref} for me?", "Can you check {ref}?", "I'd like to see {ref}."))
    if kind in ("other", "sub_add", "sub_remove"):
        ref = f"for {ref}" if ref else ""
    filters = (" for " + ref if ref and kind == "list" else "") + (" with " + " and ".join(details) if details and kind == "list" else "")
    text = template.format(verb=verb_phrase, ref=ref or f"the {entity}", details=detail_text, entity=entity,
                           entities=_plural(entity), outputs=" and ".join(o.name for o in outputs) or "details",
                           filters=filters)
    return re.sub(r"\s+", " ", text).replace(" ,", ",").replace(" .", ".").replace(" ?", "?").strip()


def _persona(dom: _Domain, state: dict, b: _Build, rng: random.Random) -> str:
    """Who the user is: the person record the task touches (first and last name), and a manner."""
    trait = rng.choice(_TRAITS)
    people_ids = {v for a in b.actions for v in a.arguments.values() if isinstance(v, str)}
    for out in b.outputs:  # the people the touched records belong to
        people_ids |= {v for vs in index_values(out).values() for v in vs if isinstance(v, str)}
    people_ids = sorted(people_ids)
    for coll in sorted(dom.people):
        table = state.get(coll) or {}
        touched = [table[i] for i in people_ids if i in table]
        for record in touched:
            first, last = record.get("first_name"), record.get("last_name")
            name = " ".join(x for x in (first, last) if isinstance(x, str)) or record.get("name") or record.get("full_name")
            if isinstance(name, str) and name:
                return f"You are {name}, a {dom.entity(coll)}; you are {trait}."
    return f"You are a customer of this service; you are {trait}."


_SCOPE_TEMPLATES = ("Please delete {ref}.", "I want to remove {ref} for good.", "Could you delete {ref} for me?",
                    "I'd like {ref} deleted.")


def build_scope_task(env: EnvironmentLike, state_id: str, coll: str, record_id: str, rng: random.Random) -> Task | None:
    """A request no tool can carry out: delete a record of a collection without a delete tool (rule ``scope``).

    The gold actions are the lookups that find and check the record; the gold outcome is a refusal and no write.
    """
    dom = _Domain(env)
    initial = env.initial_states[state_id]
    b = _Build(dom=dom, state=copy.deepcopy(initial), rng=rng)
    try:
        ref = _resolve(b, coll, record_id)
        getter = dom.getter(coll)
        if getter is not None and ref.source.startswith("fact:"):
            b.call(getter[0], {getter[1]: record_id}, "lookup", {getter[1]: ref.source})
    except _Unusable:
        return None
    entity = dom.entity(coll)
    b.steps.append(GoldStep(action=-1, request=0, role="act", sources={}, attempt=None,
                            describe=f"delete the {entity} {record_id}"))
    request = ScenarioRequest(text=rng.choice(_SCOPE_TEMPLATES).format(ref=ref.phrase), kind="delete", forbidden=True)
    scenario = UserScenario(persona=_persona(dom, initial, b, rng), requests=[request], facts=list(b.facts.values()))
    task_id = "s-" + content_hash({"domain_id": env.domain_id, "initial_state_id": state_id, "delete": [coll, record_id],
                                   "gold_actions": [a.model_dump() for a in b.actions]})[:16]
    return Task(
        task_id=task_id, domain_id=env.domain_id, user_intent=scenario.goal(), initial_state_id=state_id,
        initial_state_hash=state_hash(initial), gold_actions=b.actions, gold_state_hash=state_hash(initial),
        read_only=True, gold_outputs=json.loads(canonical_json(b.outputs)), policy_rule="scope",
        expected_outputs=[], scenario=scenario, gold_steps=b.steps, confirm_tools=dom.confirm_tools,
    )
