"""The domain policy: the document an agent of this environment works under (tau-bench style).

Programmatic by default, built from the tool kinds, the schema and its enums:

- scope: act only through the tools, one tool call at a time, never invent ids or values;
- verify: where the domain keeps people (customers, patients, ...), find the user's own record before any
  change to their data, and act only on records that belong to them;
- confirm: before any write, state the action and its details and get an explicit yes; deletes are final;
- transition: which status changes are allowed (from the enum and ``kinds.allowed_sources``); a record
  already in the target status, or in a status with no edge to it, is refused (the tool raises ToolError);
- availability / funds: a booking or payment needs the offer to be available and the payer to have the
  funds (the tool checks both and refuses);
- refuse: requests no tool can carry out, and changes to records in a final status.

Rules marked ``enforced_by`` are checked by the tools themselves (semantic validation proves it), so a task
that asks for what the policy forbids has the gold outcome "no write". ``PolicyWriter`` is the interface an
LLM writer (through the ``llm`` resource) plugs into; its text is kept, the checkable rules stay the
programmatic ones.
"""

from __future__ import annotations

from typing import Protocol

from agentscaler_dagster.contracts import Policy, PolicyRule, ToolSpec
from agentscaler_dagster.envgen.kinds import FINAL_STATUSES

_PEOPLE = ("customer", "user", "patient", "passenger", "guest", "member", "client", "renter", "rider", "buyer",
           "listener", "requester", "traveler", "account", "student", "subscriber")


class PolicyWriter(Protocol):
    name: str

    def write(self, policy: Policy, tools: list[ToolSpec], schema: dict) -> str:
        """Markdown for the agent, saying what ``policy.rules`` say (it may add tone and examples)."""
        ...


def write_policy(policy: Policy, tools: list[ToolSpec], schema: dict, writer: PolicyWriter | None) -> Policy:
    """The policy with its prose written by ``writer`` (an LLM); the programmatic text when there is none.

    The rules stay the programmatic ones, and their text is appended to what the writer wrote, so the agent
    always reads the rules the tools enforce, however the prose came out. A writer that fails or writes
    nothing leaves the programmatic text; ``generator`` records which happened.
    """
    if writer is None:
        return policy
    try:
        prose = (writer.write(policy, tools, schema) or "").strip()
    except Exception as exc:  # noqa: BLE001 - a writer that fails leaves the programmatic policy in place
        return policy.model_copy(update={"generator": f"programmatic ({writer.name} failed: {exc})"[:300]})
    if not prose:
        return policy.model_copy(update={"generator": f"programmatic ({writer.name} wrote nothing)"})
    rules = "\n".join(f"- {rule.text}" for rule in policy.rules)
    return policy.model_copy(update={"text": f"{prose}\n\n## Rules\n\n{rules}\n", "generator": writer.name})


def _a(noun: str) -> str:
    words = noun.replace("_", " ")
    return ("an " if words[:1] in "aeiou" else "a ") + words


def _names(names) -> str:
    names = sorted(names)
    return ", ".join(f"`{n}`" for n in names)


def build_policy(domain_id: str, label: str, tools: list[ToolSpec], schema: dict) -> Policy:
    """The programmatic policy of a domain (see the module docstring)."""
    bindings = schema["bindings"]
    colls = schema["collections"]
    by_kind: dict[str, list[str]] = {}
    for spec in sorted(tools, key=lambda t: t.name):
        if spec.name in bindings:
            by_kind.setdefault(bindings[spec.name]["kind"], []).append(spec.name)
    writes = sorted(n for k, ns in by_kind.items() if k not in ("get", "list", "search") for n in ns)
    reads = sorted(n for k in ("get", "list", "search") for n in by_kind.get(k, []))
    rules: list[PolicyRule] = [PolicyRule(
        rule_id="scope", kind="scope", tools=[],
        text="Act only through the tools listed; make one tool call at a time. Never invent an id, a price or "
             "a status: look it up or ask the user. If no tool can do what the user asks, say so and do not "
             "pretend it was done.")]
    people = sorted(c for c, v in colls.items() if v["entity"].split("_")[-1] in _PEOPLE)
    if people and writes:
        lookups = sorted(n for n in reads if bindings[n]["collection"] in people)
        rules.append(PolicyRule(
            rule_id="verify-identity", kind="verify", tools=lookups,
            text=f"Before changing anything for a user, identify them: find their own record "
                 f"({', '.join(colls[c]['entity'] for c in people)}) by the id, email or phone number they give"
                 + (f", with {_names(lookups)}" if lookups else "") + ". Act only on records that belong to that "
                 "user, and never reveal another person's data."))
    if writes:
        rules.append(PolicyRule(
            rule_id="confirm-writes", kind="confirm", tools=writes,
            text=f"Before any call that changes data ({_names(writes)}), tell the user exactly what will be done "
                 "and with which details, and proceed only after an explicit yes."))
    if by_kind.get("delete"):
        rules.append(PolicyRule(
            rule_id="confirm-delete", kind="confirm", tools=by_kind["delete"],
            text=f"Deleting ({_names(by_kind['delete'])}) cannot be undone: say so when you ask for confirmation."))
    for name in by_kind.get("transition", []):
        b = bindings[name]
        coll = colls[b["collection"]]
        target = b["status_value"]
        allowed = (coll.get("transitions") or {}).get(target, [])
        rules.append(PolicyRule(
            rule_id=f"transition-{name}", kind="transition", tools=[name], enforced_by=[name],
            text=f"`{name}` sets {_a(coll['entity'])}'s {coll['status_field']} to '{target}'; "
                 f"it is allowed only when the {coll['status_field']} is "
                 + (" or ".join(f"'{v}'" for v in allowed) if allowed else "(no status allows it)")
                 + f". {_a(coll['entity']).capitalize()} that is already '{target}' cannot be changed again: "
                   "refuse and explain."))
    finals = sorted({(b["collection"], v) for b in bindings.values() if b["kind"] == "transition"
                     for v in colls[b["collection"]].get("status_values", []) if v in FINAL_STATUSES})
    if finals:
        text = "; ".join(f"{colls[c]['entity'].replace('_', ' ')} '{v}'" for c, v in finals)
        rules.append(PolicyRule(
            rule_id="refuse-final", kind="refuse", tools=by_kind.get("transition", []),
            enforced_by=by_kind.get("transition", []),
            text=f"Records in a final status ({text}) cannot be moved to another status: refuse such requests."))
    for name in by_kind.get("action", []):
        b = bindings[name]
        offer, payer = b.get("offer"), b.get("payer")
        if offer:
            rules.append(PolicyRule(
                rule_id=f"availability-{name}", kind="availability", tools=[name], enforced_by=[name],
                text=f"`{name}` needs the {colls[offer]['entity'].replace('_', ' ')} to exist and be available in "
                     "the quantity asked; the amount is computed from its price, never taken from the user."))
        if payer:
            rules.append(PolicyRule(
                rule_id=f"funds-{name}", kind="funds", tools=[name], enforced_by=[name],
                text=f"`{name}` is refused when the {colls[payer]['entity'].replace('_', ' ')} does not hold "
                     "enough funds for the amount: tell the user, do not split or retry on your own."))
    lines = [f"# Policy: {label}", "",
             (f"You are the agent of the '{label}' service ({domain_id}). Help the user with what the tools "
              "below can do, following these rules."), ""]
    lines += [f"{i}. {r.text}" for i, r in enumerate(rules, 1)]
    if reads:
        lines += ["", f"Lookups you may use freely: {_names(reads)}."]
    return Policy(domain_id=domain_id, generator="programmatic", text="\n".join(lines) + "\n", rules=rules)
