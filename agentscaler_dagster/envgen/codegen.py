"""Tool code: the programmatic generator and the protocol an LLM generator plugs into.

``ProgrammaticCodeGenerator`` renders one plain function per tool from its binding (see schema.py): reads
look records up, filter and page them; writes check their arguments, that referenced records exist and
simple preconditions (an order already cancelled cannot be cancelled again, a quantity must be positive),
change the state and return the changed or created record. New ids come from a counter in
``state["_meta"]`` (no randomness, no clock), so a call is a pure function of (state, arguments).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from agentscaler_dagster.contracts import Domain, ToolSpec
from agentscaler_dagster.envgen.naming import python_function_name, to_snake

_POSITIVE = frozenset({"quantity", "qty", "amount", "count", "units", "nights", "guests", "seats", "passengers",
                       "price", "number_of_items", "number_of_guests", "number_of_tickets", "tickets", "copies"})


@runtime_checkable
class CodeGenerator(Protocol):
    """Writes the tool module of a domain (the same contract as the programmatic generator)."""

    name: str

    def generate(self, domain: Domain, tools: list[ToolSpec], schema: dict) -> str:
        """Python source with one ``def tool_name(state, **arguments)`` per tool (see DESIGN.md)."""
        ...


_HELPERS = '''

def _table(state, name):
    table = state.get(name)
    if table is None:
        table = {}
        state[name] = table
    if not isinstance(table, dict):
        raise ToolError(f"the database collection '{name}' is malformed")
    return table


def _rows(state, name):
    table = _table(state, name)
    return [table[key] for key in sorted(table, key=_key_order)]


def _key_order(key):
    # numeric ids sort as numbers, the rest as text
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


def _lookup(state, name, entity, key):
    record = _table(state, name).get(str(key))
    if not isinstance(record, dict):
        raise ToolError(f"{entity} '{key}' not found")
    return record


def _require_refs(state, refs, arguments):
    for param, name, entity, many in refs:
        value = arguments.get(param)
        if value is None:
            continue
        for key in (value if many and isinstance(value, list) else [value]):
            _lookup(state, name, entity, key)


def _first_match(state, name, entity, filters):
    for record in _rows(state, name):
        if _matches(record, filters):
            return record
    described = ", ".join(f"{field}={value!r}" for field, value in sorted(filters.items()))
    if described:
        raise ToolError(f"no {entity} found with {described}")
    raise ToolError(f"no {entity} exists yet")


def _new_id(state, name, prefix, integer):
    meta = state.get("_meta")
    if not isinstance(meta, dict):
        meta = {}
        state["_meta"] = meta
    counters = meta.get("counters")
    if not isinstance(counters, dict):
        counters = {}
        meta["counters"] = counters
    table = _table(state, name)
    number = counters.get(name)
    if not isinstance(number, int):
        number = len(table) + 1
    key = number if integer else f"{prefix}-{number}"
    while str(key) in table:
        number += 1
        key = number if integer else f"{prefix}-{number}"
    counters[name] = number + 1
    return key


def _matches(record, filters):
    for field, wanted in filters.items():
        have = record.get(field)
        if isinstance(wanted, list):
            if isinstance(have, list):
                if not all(item in have for item in wanted):
                    return False
            elif have not in wanted:
                return False
        elif isinstance(have, list):
            if wanted not in have:
                return False
        elif isinstance(have, str) and isinstance(wanted, str):
            if have.lower() != wanted.lower():
                return False
        elif have != wanted:
            return False
    return True


def _search(record, text):
    needle = str(text).lower()
    return any(needle in str(value).lower() for value in record.values()
               if isinstance(value, (str, int, float)) and not isinstance(value, bool))


def _given(arguments, pairs):
    return {field: arguments[param] for param, field in pairs if arguments.get(param) is not None}


def _check_positive(arguments, params):
    for param in params:
        value = arguments.get(param)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
            raise ToolError(f"{param} must be positive, got {value}")


def _page(rows, arguments, limit_params, offset_params, page_params, sort_params, fields):
    for param in sort_params:
        key = arguments.get(param)
        if isinstance(key, str):
            descending = key.startswith("-")
            key = key.lstrip("-+")
            if key in fields:
                rows = sorted(rows, key=lambda r: (r.get(key) is None, str(r.get(key))), reverse=descending)
    limit = None
    for param in limit_params:
        if isinstance(arguments.get(param), (int, float)) and not isinstance(arguments.get(param), bool):
            limit = max(0, int(arguments[param]))
    start = 0
    for param in offset_params:
        if isinstance(arguments.get(param), (int, float)) and not isinstance(arguments.get(param), bool):
            start = max(0, int(arguments[param]))
    for param in page_params:
        page = arguments.get(param)
        if isinstance(page, int) and not isinstance(page, bool) and page > 1 and limit:
            start = (page - 1) * limit
    rows = rows[start:]
    return rows if limit is None else rows[:limit]
'''


def _roles(binding: dict, *roles: str) -> list[tuple[str, dict]]:
    return [(p, r) for p, r in sorted(binding["params"].items()) if r["role"] in roles]


class ProgrammaticCodeGenerator:
    """Deterministic tool code from the bindings; the embedded default (a simulator of the paper's LLM step)."""

    name = "programmatic"

    def generate(self, domain: Domain, tools: list[ToolSpec], schema: dict) -> str:
        lines = [f'"""Tool module of domain {domain.domain_id} ({domain.label}).',
                 "",
                 "Generated by agentscaler_dagster.envgen (programmatic generator). ToolError is provided by",
                 'the runtime. Every tool is a function of (state, arguments) only: no clock, no randomness."""',
                 _HELPERS]
        for spec in sorted(tools, key=lambda t: t.name):
            binding = schema["bindings"][spec.name]
            lines.append(self._tool(spec, binding, schema["collections"][binding["collection"]], schema))
        return "\n".join(lines).rstrip() + "\n"

    # --- one tool ----------------------------------------------------------------------------------------
    def _tool(self, spec: ToolSpec, binding: dict, coll: dict, schema: dict) -> str:
        fn = python_function_name(spec.name)
        doc = " ".join(spec.description.split())[:300].replace("\\", "/").replace('"', "'") or spec.name
        body: list[str] = []
        emit = body.append
        name, entity, id_field = binding["collection"], coll["entity"], coll["id_field"]
        refs = [(p, r["ref"], schema["collections"][r["ref"]]["entity"], r.get("many", False))
                for p, r in _roles(binding, "ref")]
        field_pairs = [(p, r["field"]) for p, r in _roles(binding, "field", "ref")]
        id_params = [p for p, _ in _roles(binding, "id")]
        kind = binding["kind"]
        positive = [p for p, r in _roles(binding, "field") if to_snake(p) in _POSITIVE or
                    to_snake(p).startswith("number_of_")]
        if refs:
            emit(f"_require_refs(state, {refs!r}, arguments)")
        if positive and binding["operation"] == "write":
            emit(f"_check_positive(arguments, {positive!r})")

        def locate() -> None:
            # a write finds its record by its id argument, else by the other key arguments it was given
            if id_params:
                emit(f"key = arguments[{id_params[0]!r}]")
                emit(f"record = _lookup(state, {name!r}, {entity!r}, key)")
            else:
                keys = [(p, r["field"]) for p, r in _roles(binding, "ref")] or \
                       [(p, r["field"]) for p, r in _roles(binding, "field")
                        if p in (spec.parameters.get("required") or [])]
                emit(f"record = _first_match(state, {name!r}, {entity!r}, _given(arguments, {keys!r}))")
                emit(f"key = record.get({id_field!r})")
            return None

        if kind in ("list", "find"):
            filter_pairs = [(p, r["field"]) for p, r in _roles(binding, "field", "ref") if r.get("filter", True)]
            emit(f"filters = _given(arguments, {filter_pairs!r})")
            id_in = [p for p, _ in _roles(binding, "id_in")]
            emit(f"rows = [r for r in _rows(state, {name!r}) if _matches(r, filters)]")
            for p in id_in:
                emit(f"if isinstance(arguments.get({p!r}), list):")
                emit(f"    wanted = [str(k) for k in arguments[{p!r}]]")
                emit(f"    rows = [r for r in rows if str(r.get({id_field!r})) in wanted]")
            for p, _ in _roles(binding, "query"):
                emit(f"if arguments.get({p!r}):")
                emit(f"    rows = [r for r in rows if _search(r, arguments[{p!r}])]")
            if kind == "find":
                emit("if not rows:")
                emit(f"    _first_match(state, {name!r}, {entity!r}, filters)")
                emit(f"    raise ToolError('no {entity} matches the given search')")
                emit("return rows[0]")
            else:
                fields = sorted(coll["record"]["properties"])
                emit(f"return _page(rows, arguments, {[p for p, _ in _roles(binding, 'limit')]!r}, "
                     f"{[p for p, _ in _roles(binding, 'offset')]!r}, {[p for p, _ in _roles(binding, 'page')]!r}, "
                     f"{[p for p, _ in _roles(binding, 'sort')]!r}, {fields!r})")
        elif kind == "get":
            emit(f"key = arguments[{id_params[0]!r}]")
            emit(f"record = _lookup(state, {name!r}, {entity!r}, key)")
            if field_pairs:
                emit(f"filters = _given(arguments, {field_pairs!r})")
                emit("if not _matches(record, filters):")
                emit(f"    raise ToolError(f\"{entity} '{{key}}' does not match \" + "
                     "\", \".join(f'{f}={v!r}' for f, v in sorted(filters.items())))")
            emit("return record")
        elif kind == "create":
            integer = coll["id_type"] == "integer"
            if id_params:
                emit(f"key = arguments[{id_params[0]!r}]")
                emit(f"if str(key) in _table(state, {name!r}):")
                emit(f"    raise ToolError(f\"{entity} '{{key}}' already exists\")")
            else:
                emit(f"key = _new_id(state, {name!r}, {coll['id_prefix']!r}, {integer!r})")
            emit(f"record = {{{id_field!r}: key}}")
            status_field = coll.get("status_field")
            if status_field:
                initial = next((v for v in coll.get("status_values") or [] if v in ("pending", "active", "open",
                                                                                     "new", "created")), None)
                initial = initial or (coll.get("status_values") or ["active"])[0]
                emit(f"record[{status_field!r}] = {initial!r}")
            if "action_count" in coll["record"]["properties"]:
                emit("record['action_count'] = 0")
            emit(f"record.update(_given(arguments, {field_pairs!r}))")
            emit(f"_table(state, {name!r})[str(key)] = record")
            emit("return record")
        elif kind == "update":
            locate()
            updates = [(p, f) for p, f in field_pairs if p not in id_params]
            emit(f"changes = _given(arguments, {updates!r})")
            if updates:
                emit("if not changes:")
                emit(f"    raise ToolError('nothing to update: give at least one of {', '.join(p for p, _ in updates)}')")
            emit("record.update(changes)")
            emit("return record")
        elif kind == "status":
            locate()
            field = coll.get("status_field") or "status"
            target = binding["status_value"]
            terminal = sorted({"cancelled", "closed", "archived", "revoked", "voided", "rejected", "refunded",
                               "returned", "declined", "ended"} & set(coll.get("status_values") or []) - {target})
            emit(f"current = record.get({field!r})")
            emit(f"if current == {target!r}:")
            emit(f"    raise ToolError(f\"{entity} '{{key}}' is already {target}\")")
            if terminal:
                emit(f"if current in {terminal!r}:")
                emit(f"    raise ToolError(f\"{entity} '{{key}}' is {{current}} and cannot become {target}\")")
            extra = [(p, f) for p, f in field_pairs if p not in id_params and f != field]
            if extra:
                emit(f"record.update(_given(arguments, {extra!r}))")
            emit(f"record[{field!r}] = {target!r}")
            emit("return record")
        elif kind == "delete":
            locate()
            emit(f"del _table(state, {name!r})[str(key)]")
            emit(f"return {{'deleted': True, {id_field!r}: key, 'record': record}}")
        else:  # action: a write verb we do not know; it leaves a trace on the record it acts on
            locate()
            extra = [(p, f) for p, f in field_pairs if p not in id_params]
            if extra:
                emit(f"record.update(_given(arguments, {extra!r}))")
            emit(f"record['last_action'] = {spec.name!r}")
            emit("record['action_count'] = (record.get('action_count') or 0) + 1")
            emit("return record")
        text = "\n".join("    " + line for line in body)
        return f'\n\ndef {fn}(state, **arguments):\n    """{doc}"""\n{text}'
