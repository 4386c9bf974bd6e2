"""Validation of an environment: does every tool run, and does it do what its kind says (semantics.py)?

For each tool, arguments are sampled from an initial state (ids of records that exist, field values the
records hold, defaults by type) and the tool is called through the real sandbox. A tool passes when a
call succeeds and its effect matches its operation: a write changes the state hash, a read leaves it as
it was. ``pass_rate`` over tools and ``min_pass_rate`` decide ``usable``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_serializer

from agentscaler_dagster.contracts import ToolSpec, state_hash
from agentscaler_dagster.envgen.kinds import PRICE_WORDS, QUANTITY_WORDS, pick
from agentscaler_dagster.envgen.schema import locator_params
from agentscaler_dagster.envgen.semantics import ToolSemantics, check_semantics
from agentscaler_dagster.envgen.states import state_problems
from agentscaler_dagster.sandbox.argcheck import check_arguments
from agentscaler_dagster.sandbox.static_check import check_module

_ATTEMPTS = 4


class ToolCheck(BaseModel):
    tool: str
    operation: str
    ok: bool
    attempts: int
    arguments: dict | None = None
    error: str | None = None
    state_changed: bool | None = None


class ValidationReport(BaseModel):
    domain_id: str
    static_problems: list[str] = Field(default_factory=list)
    compiled: bool = False
    missing_functions: list[str] = Field(default_factory=list)
    state_problems: dict[str, list[str]] = Field(default_factory=dict)
    tools: list[ToolCheck] = Field(default_factory=list)
    pass_rate: float = 0.0
    min_pass_rate: float = 0.9
    tool_kinds: dict[str, str] = Field(default_factory=dict, description="Tool name -> kind (kinds.py).")
    semantics: list[ToolSemantics] = Field(default_factory=list, description="Property checks by kind, per tool.")
    semantic_valid: bool = False
    usable: bool = False
    quarantined_tools: dict[str, str] = Field(
        default_factory=dict, description="Tools left out of the package (package.py's quarantine) -> why; the "
                                          "other fields describe the tools that remain.")
    quarantine_note: str | None = Field(
        default=None, description="Why a domain with failing tools was not saved by leaving them out.")

    @property
    def failures(self) -> list[ToolCheck]:
        return [t for t in self.tools if not t.ok]

    @model_serializer(mode="wrap")
    def _omit_empty_quarantine(self, handler):
        # a domain that needed no quarantine writes the same validation.json bytes as before it existed
        data = handler(self)
        if isinstance(data, dict):
            for key in ("quarantined_tools", "quarantine_note"):
                if not data.get(key):
                    data.pop(key, None)
        return data


def _base_type(schema: Any) -> str:
    t = (schema or {}).get("type", "string") if isinstance(schema, dict) else "string"
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    return t


def default_value(schema: Any, rng: random.Random, depth: int = 0, nonempty: bool = False) -> Any:
    """A value that fits a JSON Schema, for parameters the state says nothing about."""
    schema = schema if isinstance(schema, dict) else {}
    enum = [v for v in (schema.get("enum") or []) if v is not None]
    if enum:
        return rng.choice(enum)
    t = _base_type(schema)
    if t == "integer":
        low = schema.get("minimum", 1)
        return int(low) if isinstance(low, (int, float)) and low > 1 else rng.randint(1, 5)
    if t == "number":
        return round(rng.uniform(1, 50), 2)
    if t == "boolean":
        return rng.random() < 0.5
    if t == "array":
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        return [default_value(items, rng, depth + 1, nonempty)] if nonempty and depth < 3 else []
    if t == "object":
        if depth > 3:
            return {}
        props = schema.get("properties") or {}
        keys = [k for k in sorted(props) if nonempty or k in (schema.get("required") or [])]
        return {k: default_value(props[k], rng, depth + 1) for k in keys}
    fmt = schema.get("format")
    if fmt == "date":
        return "2024-06-01"
    if fmt == "date-time":
        return "2024-06-01T12:00:00Z"
    if fmt == "email":
        return "someone@example.com"
    return rng.choice(("alpha", "bravo", "charlie", "delta"))


def _fit(value: Any, schema: dict) -> bool:
    return check_arguments("x", {"type": "object", "properties": {"v": schema}}, {"v": value}) is None


def _coerce_key(value: Any, schema: dict) -> Any:
    """Tools of one API disagree on an id's type (4501 vs "4501"); the record keys are text either way."""
    if isinstance(value, list):
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        return [_coerce_key(v, items) for v in value]
    t = _base_type(schema)
    if t == "string" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if t == "integer" and isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def sample_arguments(spec: ToolSpec, schema: dict, state: dict, rng: random.Random, *,
                     include_optional: float = 0.0) -> dict:
    """Arguments for ``spec`` that make sense in ``state``: existing ids, values records hold.

    ``include_optional`` is the chance that each optional parameter is given too. The task builder can
    use this to fill the arguments of a walk's steps.
    """
    binding = schema["bindings"][spec.name]
    props = spec.parameters.get("properties") or {}
    required = set(spec.parameters.get("required") or [])
    coll = schema["collections"][binding["collection"]]
    table = state.get(binding["collection"]) or {}
    records = [table[k] for k in sorted(table)]
    status_field = coll.get("status_field")
    if binding["kind"] == "transition" and status_field:
        # a record the transition applies to: one in a status with an edge to the target
        allowed = (coll.get("transitions") or {}).get(binding.get("status_value"), [])
        live = [r for r in records if r.get(status_field) in allowed]
        records = live or records
    if binding["kind"] == "sub_remove":
        # an item to remove, and one that must stay (so that removing too much shows)
        several = [r for r in records if isinstance(r.get(binding["list_field"]), list) and len(r[binding["list_field"]]) > 1]
        holding = [r for r in records if r.get(binding["list_field"])]
        records = several or holding or records
    anchor = rng.choice(records) if records else None
    locators = set(locator_params(binding, required)) if binding["kind"] not in ("create", "action") else set()
    args: dict = {}
    for param in sorted(props):
        if param not in required and rng.random() >= include_optional:
            continue
        pschema = props[param] if isinstance(props[param], dict) else {}
        role = binding["params"].get(param, {"role": "field", "field": param})
        value: Any = None
        found = False
        if role["role"] == "id" and binding["kind"] == "create":
            # a create that takes its own id needs one no record has yet
            integer = _base_type(pschema) == "integer"
            taken = {str(k) for k in table}
            n = len(table) + 1
            while (str(n + 1000) if integer else f"{coll['id_prefix']}-{n}") in taken:
                n += 1
            value, found = (n + 1000 if integer else f"{coll['id_prefix']}-{n}"), True
        elif role["role"] in ("id", "id_in") and anchor is not None:
            value, found = anchor.get(coll["id_field"]), True
            if value is None:
                value = next((k for k in sorted(table) if table[k] is anchor), None)
            if role["role"] == "id_in":
                value = [value]
        elif role["role"] == "items" and anchor is not None:
            current = anchor.get(role["field"]) if isinstance(anchor.get(role["field"]), list) else []
            if binding["kind"] == "sub_remove":
                pool = list(current)
            elif role.get("ref"):
                ref_coll = schema["collections"][role["ref"]]
                ref_table = state.get(role["ref"]) or {}
                pool = [ref_table[k].get(ref_coll["id_field"], k) for k in sorted(ref_table)]
                pool = [v for v in pool if v not in current] or pool
            else:
                pool = [default_value((pschema.get("items") or {}) if _base_type(pschema) == "array" else pschema,
                                      rng) for _ in range(3)]
            if pool:
                picked = rng.choice(pool)
                value, found = ([picked] if role.get("many") else picked), True
        elif role["role"] == "ref":
            ref_table = state.get(role["ref"]) or {}
            own = anchor.get(role["field"]) if anchor is not None and binding["kind"] != "create" else None
            if own is not None and (binding["operation"] == "read" or param in locators):
                value, found = own, True
            elif ref_table:
                ref_coll = schema["collections"][role["ref"]]
                keys = sorted(ref_table)
                if binding["operation"] == "write" and binding["kind"] not in ("create", "action") and own is not None:
                    # a change of reference must change something: another record than the one it holds
                    held = {str(v) for v in (own if isinstance(own, list) else [own])}
                    keys = [k for k in keys if str(k) not in held] or keys
                key = rng.choice(keys)
                value = ref_table[key].get(ref_coll["id_field"], key)
                value, found = ([value] if role.get("many") else value), True
        elif role["role"] == "limit":
            value, found = 5, True
        elif role["role"] in ("offset",):
            value, found = 0, True
        elif role["role"] == "page":
            value, found = (1 if _base_type(pschema) == "integer" else None), _base_type(pschema) == "integer"
        elif role["role"] == "query" and anchor is not None:
            texts = [v for v in anchor.values() if isinstance(v, str) and v]
            if texts:
                value, found = rng.choice(texts).split(" ")[0], True
        elif role["role"] == "field" and records:
            write = binding["operation"] == "write"
            # a write gets a value from another record (so that an update changes something)
            pool = [r for r in records if r is not anchor] if write and binding["kind"] != "create" else [anchor]
            pool = pool or records
            source = rng.choice(pool) if write else anchor
            if write and param in locators:
                source = anchor  # the arguments that find the record name the anchor itself
            if source is not None and source.get(role["field"]) is not None:
                value, found = source[role["field"]], True
        if found and value is not None and role["role"] in ("id", "id_in", "ref", "items"):
            value = _coerce_key(value, pschema)
        if found and value is not None and _fit(value, pschema):
            args[param] = value
        else:
            args[param] = default_value(pschema, rng)
        if (role["role"] == "field" and binding["operation"] == "write" and binding["kind"] != "create"
                and param not in locators
                and anchor is not None and anchor.get(role["field"]) == args[param]):
            # an update must change something: a value the record does not hold yet
            for _ in range(4):
                args[param] = default_value(pschema, rng, nonempty=True)
                if args[param] != anchor.get(role["field"]):
                    break
    if binding["kind"] == "action":
        _fit_action(spec, binding, schema, state, args)
    if binding["kind"] == "update":
        # an update needs something to set beyond the arguments that find its record
        locators = set(locator_params(binding, required))
        settable = [p for p in sorted(props) if p not in locators and binding["params"].get(p, {}).get("role")
                    in ("field", "ref")]
        if settable and not any(p in args for p in settable):
            return sample_arguments(spec, schema, state, rng, include_optional=1.0)
    return args


def _fit_action(spec: ToolSpec, binding: dict, schema: dict, state: dict, args: dict) -> None:
    """A booking asks for one unit; a payment pays part of what is due (so that funds and stock suffice)."""
    fields = {p: r["field"] for p, r in binding["params"].items() if r["role"] == "field"}
    qty = pick(fields, QUANTITY_WORDS)
    if qty and qty in args and isinstance(args[qty], int):
        args[qty] = 1
    amount = next((p for p in sorted(fields) if p == "amount" or p.endswith("_amount")), None)
    if amount and amount in args and isinstance(args[amount], (int, float)):
        offer = binding.get("offer")
        param = next((p for p, r in sorted(binding["params"].items()) if r["role"] == "ref" and r["ref"] == offer), None)
        record = (state.get(offer) or {}).get(str(args.get(param))) if offer and param else None
        price = pick(schema["collections"][offer]["record"]["properties"], PRICE_WORDS) if offer else None
        due = record.get(price) if isinstance(record, dict) and price else None
        value = round(min(float(due), 20.0), 2) if isinstance(due, (int, float)) and due > 0 else 10.0
        args[amount] = value if _base_type((spec.parameters.get("properties") or {}).get(amount)) == "number" \
            else max(1, int(value))


def validate_parts(domain_id: str, specs: list[ToolSpec], source: str, schema: dict, states: dict[str, dict], *,
                   seed: int = 0, min_pass_rate: float = 0.9, runtime=None) -> ValidationReport:
    """Validate an environment given as parts (before or after it is written)."""
    from agentscaler_dagster.sandbox.environment import Environment
    from agentscaler_dagster.sandbox.static_check import tool_functions

    report = ValidationReport(domain_id=domain_id, min_pass_rate=min_pass_rate)
    report.static_problems = check_module(source)
    report.state_problems = {sid: p for sid in sorted(states) if (p := state_problems(schema, states[sid]))}
    if report.static_problems:
        return report
    try:
        compile(source, "tools_module.py", "exec")
        report.compiled = True
    except SyntaxError as exc:
        report.static_problems.append(f"does not compile: {exc}")
        return report
    defined = set(tool_functions(source))
    from agentscaler_dagster.envgen.naming import python_function_name

    report.missing_functions = sorted(s.name for s in specs if s.name not in defined
                                      and python_function_name(s.name) not in defined)
    env = Environment(domain_id=domain_id, tool_specs=specs, source=source, schema=schema,
                      initial_states=states, runtime=runtime)
    try:
        rng = random.Random(f"validate:{seed}")
        state_ids = sorted(states) or ["empty"]
        for spec in sorted(specs, key=lambda s: s.name):
            check = ToolCheck(tool=spec.name, operation=spec.operation, ok=False, attempts=0)
            for attempt in range(_ATTEMPTS):
                sid = state_ids[attempt % len(state_ids)]
                state = states.get(sid, {})
                try:
                    args = sample_arguments(spec, schema, state, rng, include_optional=0.0 if attempt < 2 else 0.5)
                except Exception as exc:  # a schema the sampler cannot read is this tool's failure, not the run's
                    check.error = f"cannot sample arguments: {type(exc).__name__}: {exc}"
                    break
                before = state_hash(state)
                result = env.call(state, spec.name, args)
                check.attempts = attempt + 1
                check.arguments = args
                if not result.ok:
                    check.error = result.error
                    if state_hash(state) != before:
                        check.error = "the caller's state was modified by a failed call"
                        break
                    continue
                changed = state_hash(result.state) != before
                check.state_changed = changed
                if spec.operation == "write" and not changed:
                    check.error = "write tool returned without changing the state"
                    continue
                if spec.operation == "read" and changed:
                    check.error = "read tool changed the state"
                    continue
                try:
                    json.dumps(result.output)
                except (TypeError, ValueError) as exc:
                    check.error = f"output is not JSON: {exc}"
                    continue
                check.ok, check.error = True, None
                break
            report.tools.append(check)
        report.tool_kinds = {s.name: schema["bindings"][s.name]["kind"] for s in sorted(specs, key=lambda s: s.name)
                             if s.name in schema.get("bindings", {})}
        report.semantics = check_semantics(env, specs, schema, states, seed=seed)
        report.semantic_valid = bool(report.semantics) and not any(t.failed for t in report.semantics)
    finally:
        env.close()
    passed = sum(1 for t in report.tools if t.ok)
    report.pass_rate = round(passed / len(report.tools), 4) if report.tools else 0.0
    report.usable = (not report.static_problems and report.compiled and not report.missing_functions
                     and not report.state_problems and report.pass_rate >= min_pass_rate and report.semantic_valid)
    return report


def validate_environment(package_dir: str | Path, *, min_pass_rate: float = 0.9, seed: int = 0,
                         runtime=None) -> ValidationReport:
    """Validate a written environment package (see module docstring)."""
    package_dir = Path(package_dir)
    specs = [ToolSpec.model_validate(s) for s in json.loads((package_dir / "tool_specs.json").read_text("utf-8"))]
    schema = json.loads((package_dir / "schema.json").read_text("utf-8"))
    source = (package_dir / "tools_module.py").read_text("utf-8")
    states = {p.stem: json.loads(p.read_text("utf-8")) for p in sorted((package_dir / "states").glob("*.json"))}
    domain_id = schema.get("domain_id") or package_dir.name
    return validate_parts(domain_id, specs, source, schema, states, seed=seed, min_pass_rate=min_pass_rate,
                          runtime=runtime)
