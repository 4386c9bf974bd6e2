"""Tool code: the programmatic generator and the protocol an LLM generator plugs into.

``ProgrammaticCodeGenerator`` renders one plain function per tool from its binding (schema.py), doing what
the tool's kind says (the contracts are in kinds.py): reads look records up, filter (equality, min/max
bounds, text query) and page them; writes check their arguments and that referenced records exist, then
create, update only the given fields, delete, add to or remove from one list field, move a status along an
allowed edge, or (computed actions) check availability and funds before recording an amount computed from
the state. Every check comes before the first change, so a failing call leaves the state as it was. An
unknown id is a ToolError that says what to check. New ids come from a counter in ``state["_meta"]`` (no
randomness, no clock), so a call is a pure function of (state, arguments).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from agentscaler_dagster.contracts import Domain, ToolSpec
from agentscaler_dagster.envgen.kinds import (
    AVAILABILITY_WORDS,
    AVAILABLE_FLAGS,
    FUNDS_WORDS,
    PRICE_WORDS,
    QUANTITY_WORDS,
    pick,
)
from agentscaler_dagster.envgen.naming import python_function_name, to_snake
from agentscaler_dagster.envgen.schema import locator_params


def _types_of(schema: dict) -> set:
    t = schema.get("type")
    return set(t) if isinstance(t, list) else {t}


def _is_int(schema: dict) -> bool:
    return bool(_types_of(schema) & {"integer", "number"})


def _is_bool(schema: dict) -> bool:
    return "boolean" in _types_of(schema)

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
import decimal

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
        raise ToolError(f"{entity} '{key}' not found; check the {entity} id with the user or look it up first")
    return record


def _as_list(value):
    return list(value) if isinstance(value, list) else [] if value is None else [value]


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _money(value):
    return float(decimal.Decimal(str(value)).quantize(decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_UP))


def _in_bounds(record, bounds):
    for field, low, high in bounds:
        have = _number(record.get(field))
        if low is not None and (have is None or have < low):
            return False
        if high is not None and (have is None or have > high):
            return False
    return True


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


def _signature(spec: ToolSpec) -> str:
    """``state, **arguments``; ``state, /, **arguments`` when the tool has a parameter named ``state``.

    The runtime calls ``fn(state, **arguments)`` with the database first, positionally; an argument named
    ``state`` (OAuth's, say) would meet the database's name twice (``got multiple values for argument
    'state'``). Positional-only, the database's name is free for ``**arguments`` to take. Tools without such
    a parameter keep the plain signature (their code stays byte for byte what it was).
    """
    return "state, /, **arguments" if "state" in (spec.parameters.get("properties") or {}) else "state, **arguments"


def _roles(binding: dict, *roles: str) -> list[tuple[str, dict]]:
    return [(p, r) for p, r in sorted(binding["params"].items()) if r["role"] in roles]


def _initial_status(coll: dict) -> str:
    values = coll.get("status_values") or ["active"]
    return next((v for v in values if v in ("pending", "active", "open", "new", "created", "booked", "scheduled")),
                values[0])


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

    # --- computed action ---------------------------------------------------------------------------------
    @staticmethod
    def _computed(spec: ToolSpec, binding: dict, coll: dict, schema: dict, field_pairs, emit) -> None:
        """book / pay / transfer: check, compute, then change (all checks come before the first change)."""
        name, id_field = binding["collection"], coll["id_field"]
        params = binding["params"]
        offer_coll, payer_coll = binding.get("offer"), binding.get("payer")
        offer_param = next((p for p, r in sorted(params.items()) if r["role"] == "ref" and r["ref"] == offer_coll), None)
        payer_param = next((p for p, r in sorted(params.items()) if r["role"] == "ref" and r["ref"] == payer_coll), None)
        fields = {p: r["field"] for p, r in params.items() if r["role"] == "field"}
        qty_param = pick(fields, QUANTITY_WORDS)
        amount_param = next((p for p in sorted(fields) if to_snake(p) == "amount" or to_snake(p).endswith("_amount")
                             and "tip" not in to_snake(p)), None)
        emit(f"key = _new_id(state, {name!r}, {coll['id_prefix']!r}, {coll['id_type'] == 'integer'!r})")
        if qty_param:
            emit(f"quantity = arguments.get({qty_param!r}, 1)")
            emit("if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:")
            emit(f"    raise ToolError(f'{qty_param} must be a whole number of at least 1, got {{quantity!r}}')")
        else:
            emit("quantity = 1")
        emit("offers = []")
        if offer_param:
            o = schema["collections"][offer_coll]
            oprops = o["record"]["properties"]
            price = pick(oprops, PRICE_WORDS)
            avail = pick(oprops, AVAILABILITY_WORDS) if binding["verb"] not in ("pay", "transfer", "deposit",
                                                                                 "withdraw", "redeem") else None
            avail = avail if avail and _is_int(oprops[avail]) else None
            flag = pick(oprops, AVAILABLE_FLAGS)
            flag = flag if flag and _is_bool(oprops[flag]) else None
            emit(f"for offer_key in _as_list(arguments.get({offer_param!r})):")
            emit(f"    offers.append((offer_key, _lookup(state, {offer_coll!r}, {o['entity']!r}, offer_key)))")
            emit("if not offers:")
            emit(f"    raise ToolError('give the {o['entity']} to {binding['verb'] or 'use'} in {offer_param}')")
            if flag:
                emit("for offer_key, offer in offers:")
                emit(f"    if offer.get({flag!r}) is False:")
                emit(f"        raise ToolError(f\"{o['entity']} '{{offer_key}}' is not available\")")
            if avail:
                emit("for offer_key, offer in offers:")
                emit(f"    left = offer.get({avail!r}) or 0")
                emit("    if left < quantity:")
                emit(f"        raise ToolError(f\"{o['entity']} '{{offer_key}}' has only {{left}} available, "
                     f"{{quantity}} requested\")")
            if amount_param:
                emit(f"amount = arguments.get({amount_param!r})")
                emit("if _number(amount) is None or amount <= 0:")
                emit(f"    raise ToolError(f'{amount_param} must be a positive amount, got {{amount!r}}')")
                if price:
                    emit("for offer_key, offer in offers:")
                    emit(f"    due = _number(offer.get({price!r}))")
                    emit("    if due is not None and amount > due:")
                    emit(f"        raise ToolError(f\"{amount_param} {{amount}} is more than the {price} of "
                         f"{o['entity']} '{{offer_key}}' ({{due}})\")")
            elif price:
                emit(f"amount = _money(sum((_number(offer.get({price!r})) or 0) for _, offer in offers) * quantity)")
            else:
                emit("amount = 0.0")
        else:
            emit(f"amount = arguments.get({amount_param!r}, 0) if {bool(amount_param)!r} else 0")
            emit("if _number(amount) is None or amount < 0:")
            emit("    raise ToolError(f'the amount must be a positive number, got {amount!r}')")
        if payer_param:
            pcoll = schema["collections"][payer_coll]
            funds = pick(pcoll["record"]["properties"], FUNDS_WORDS)
            emit(f"payer_key = arguments.get({payer_param!r})")
            emit(f"payer = _lookup(state, {payer_coll!r}, {pcoll['entity']!r}, payer_key) if payer_key is not None "
                 "else None")
            if funds:
                emit(f"if payer is not None and (_number(payer.get({funds!r})) or 0) < amount:")
                emit(f"    raise ToolError(f\"insufficient funds: {pcoll['entity']} '{{payer_key}}' has "
                     f"{{payer.get({funds!r})}}, {{amount}} needed\")")
        # every check passed: now change the state
        if offer_param:
            o = schema["collections"][offer_coll]
            oprops = o["record"]["properties"]
            avail = pick(oprops, AVAILABILITY_WORDS) if binding["verb"] not in ("pay", "transfer", "deposit",
                                                                                 "withdraw", "redeem") else None
            price = pick(oprops, PRICE_WORDS)
            if avail and _is_int(oprops[avail]):
                emit("for offer_key, offer in offers:")
                emit(f"    offer[{avail!r}] = (offer.get({avail!r}) or 0) - quantity")
            if amount_param and price:
                emit("for offer_key, offer in offers:")
                emit(f"    if _number(offer.get({price!r})) is not None:")
                emit(f"        offer[{price!r}] = _money(offer[{price!r}] - amount)")
        if payer_param:
            funds = pick(schema["collections"][payer_coll]["record"]["properties"], FUNDS_WORDS)
            if funds:
                emit("if payer is not None:")
                emit(f"    payer[{funds!r}] = _money((_number(payer.get({funds!r})) or 0) - amount)")
        emit(f"record = {{{id_field!r}: key}}")
        if coll.get("status_field"):
            emit(f"record[{coll['status_field']!r}] = 'confirmed'")
        emit(f"record.update(_given(arguments, {field_pairs!r}))")
        emit("record['amount'] = _money(amount)")
        emit(f"_table(state, {name!r})[str(key)] = record")
        emit("return record")

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

        locators = locator_params(binding, spec.parameters.get("required") or [])

        def locate() -> None:
            # a write finds its record by its id argument, else by the other key arguments it was given
            if id_params:
                emit(f"key = arguments[{id_params[0]!r}]")
                emit(f"record = _lookup(state, {name!r}, {entity!r}, key)")
            else:
                keys = [(p, binding["params"][p]["field"]) for p in locators]
                emit(f"record = _first_match(state, {name!r}, {entity!r}, _given(arguments, {keys!r}))")
                emit(f"key = record.get({id_field!r})")
            return None

        if kind in ("list", "search"):
            filter_pairs = [(p, r["field"]) for p, r in _roles(binding, "field", "ref") if r.get("filter", True)]
            bounds = [(p, r["field"], r["role"]) for p, r in _roles(binding, "min", "max")]
            emit(f"filters = _given(arguments, {filter_pairs!r})")
            emit(f"bounds = [(field, arguments.get(p) if role == 'min' else None, arguments.get(p) if role == 'max' "
                 f"else None) for p, field, role in {bounds!r}]")
            id_in = [p for p, _ in _roles(binding, "id_in")]
            emit(f"rows = [r for r in _rows(state, {name!r}) if _matches(r, filters) and _in_bounds(r, bounds)]")
            for p in id_in:
                emit(f"if isinstance(arguments.get({p!r}), list):")
                emit(f"    wanted = [str(k) for k in arguments[{p!r}]]")
                emit(f"    rows = [r for r in rows if str(r.get({id_field!r})) in wanted]")
            for p, _ in _roles(binding, "query"):
                emit(f"if arguments.get({p!r}):")
                emit(f"    rows = [r for r in rows if _search(r, arguments[{p!r}])]")
            if kind == "search":
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
                # a client-chosen id must be new; without one the counter gives it
                emit(f"key = arguments.get({id_params[0]!r})")
                emit("if key is None:")
                emit(f"    key = _new_id(state, {name!r}, {coll['id_prefix']!r}, {integer!r})")
                emit(f"elif str(key) in _table(state, {name!r}):")
                emit(f"    raise ToolError(f\"{entity} '{{key}}' already exists; choose another {id_field}\")")
            else:
                emit(f"key = _new_id(state, {name!r}, {coll['id_prefix']!r}, {integer!r})")
            emit(f"record = {{{id_field!r}: key}}")
            status_field = coll.get("status_field")
            if status_field:
                emit(f"record[{status_field!r}] = {_initial_status(coll)!r}")
            if "action_count" in coll["record"]["properties"]:
                emit("record['action_count'] = 0")
            emit(f"record.update(_given(arguments, {field_pairs!r}))")
            emit(f"_table(state, {name!r})[str(key)] = record")
            emit("return record")
        elif kind == "update":
            locate()
            updates = [(p, f) for p, f in field_pairs if p not in locators]
            emit(f"changes = _given(arguments, {updates!r})")
            if updates:
                emit("if not changes:")
                emit(f"    raise ToolError('nothing to update: give at least one of {', '.join(p for p, _ in updates)}')")
            emit("record.update(changes)")
            emit("return record")
        elif kind in ("sub_add", "sub_remove"):
            locate()
            items_param, list_field = binding["items_param"], binding["list_field"]
            role = binding["params"][items_param]
            emit(f"items = _as_list(arguments.get({items_param!r}))")
            emit("if not items:")
            emit(f"    raise ToolError('give at least one item in {items_param}')")
            if role.get("ref"):
                ref_entity = schema["collections"][role["ref"]]["entity"]
                emit("for item in items:")
                emit(f"    _lookup(state, {role['ref']!r}, {ref_entity!r}, item)")
            emit(f"current = _as_list(record.get({list_field!r}))")
            if kind == "sub_add":
                emit("added = [item for item in items if item not in current]")
                emit(f"record[{list_field!r}] = current + [item for i, item in enumerate(added) "
                     "if item not in added[:i]]")
            else:
                emit("missing = [item for item in items if item not in current]")
                emit("if missing:")
                emit(f"    raise ToolError(f\"{{missing[0]!r}} is not in the {list_field} of {entity} '{{key}}'\")")
                emit(f"record[{list_field!r}] = [item for item in current if item not in items]")
            emit("return record")
        elif kind == "transition":
            locate()
            field = coll.get("status_field") or "status"
            target = binding["status_value"]
            allowed = (coll.get("transitions") or {}).get(target, [])
            emit(f"current = record.get({field!r})")
            emit(f"if current == {target!r}:")
            emit(f"    raise ToolError(f\"{entity} '{{key}}' is already {target}\")")
            emit(f"if current not in {allowed!r}:")
            emit(f"    raise ToolError(f\"{entity} '{{key}}' is {{current}}: it can become {target} only from "
                 f"{' or '.join(allowed) or 'no status'}\")")
            extra = [(p, f) for p, f in field_pairs if p not in id_params and f != field]
            if extra:
                emit(f"record.update(_given(arguments, {extra!r}))")
            emit(f"record[{field!r}] = {target!r}")
            emit("return record")
        elif kind == "delete":
            locate()
            emit(f"del _table(state, {name!r})[str(key)]")
            emit(f"return {{'deleted': True, {id_field!r}: key, 'record': record}}")
        elif kind == "action":
            self._computed(spec, binding, coll, schema, field_pairs, emit)
        else:  # other: a write verb we do not know; it leaves a trace on the record it acts on
            locate()
            extra = [(p, f) for p, f in field_pairs if p not in id_params]
            if extra:
                emit(f"record.update(_given(arguments, {extra!r}))")
            emit(f"record['last_action'] = {spec.name!r}")
            emit("record['action_count'] = (record.get('action_count') or 0) + 1")
            emit("return record")
        text = "\n".join("    " + line for line in body)
        return f'\n\ndef {fn}({_signature(spec)}):\n    """{doc}"""\n{text}'
