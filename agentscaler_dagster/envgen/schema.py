"""The domain database schema and each tool's binding to it.

Collections come from the entities the tools name: the noun of a tool ("cancel_order" -> order) and the
entities behind id-like parameters ("customer_id" -> customer). Each collection is keyed by its id field;
its fields are typed from the parameters and the ``returns`` schemas of every tool that touches it, so the
schema is shared by all the domain's tools. A tool's *binding* says what it does to which collection
(its kind: see kinds.py) and what each parameter means there
(own id, reference to another collection, field, limit, offset, query, sort).

With a user's snapshot (bring your own database) the collections are inferred from the data first and
the tools are bound to them the same way.
"""

from __future__ import annotations

import copy
from typing import Any

from agentscaler_dagster.contracts import ToolSpec
from agentscaler_dagster.envgen.kinds import (
    AVAILABILITY_WORDS,
    COMPUTED_VERBS,
    FUNDS_WORDS,
    PRICE_WORDS,
    SUB_ADD_VERBS,
    SUB_PREPOSITIONS,
    SUB_REMOVE_VERBS,
    pick,
    transitions_for,
)
from agentscaler_dagster.envgen.naming import (
    CREATE_VERBS,
    DELETE_VERBS,
    LIMIT_PARAMS,
    OFFSET_PARAMS,
    PAGE_PARAMS,
    QUERY_PARAMS,
    SORT_PARAMS,
    STATUS_VERBS,
    UPDATE_VERBS,
    id_entity,
    noun_of,
    plural,
    singular,
    split_name,
    to_snake,
)
from agentscaler_dagster.sandbox.argcheck import check_value, json_type

_TERMINAL = frozenset({"cancelled", "closed", "archived", "revoked", "voided", "rejected", "refunded",
                       "returned", "declined", "ended", "completed", "delivered"})
_BASE_STATUSES = ("active", "pending")
_KEEP_KEYS = ("type", "enum", "format", "minimum", "maximum", "items")


def _norm(name: str) -> str:
    return to_snake(name).replace("_", "")


def _field_schema(schema: Any) -> dict:
    """A compact field schema: the type (nullable), enum and format of a parameter or property."""
    schema = schema if isinstance(schema, dict) else {}
    out: dict = {}
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    if t not in ("string", "integer", "number", "boolean", "array", "object"):
        t = "object" if "properties" in schema else "array" if "items" in schema else "string"
    out["type"] = t
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        # specs put a string enum on an array (the items' values) or "true"/"false" on a boolean: values of
        # another type than the field's would make every record that holds one invalid, so they are left out
        values = [v for v in schema["enum"] if v is not None and check_value(v, {"type": t}, "v") is None]
        if values or not any(v is not None for v in schema["enum"]):
            out["enum"] = values[:50]
    if isinstance(schema.get("format"), str):
        out["format"] = schema["format"]
    if t == "array":
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        it = items.get("type") if isinstance(items.get("type"), str) else "string"
        out["items"] = {"type": it if it in ("string", "integer", "number", "boolean", "object") else "string"}
    return out


def _nullable(field: dict) -> dict:
    out = copy.deepcopy(field)
    out["type"] = [field["type"], "null"]
    if "enum" in out:
        out["enum"] = list(out["enum"]) + [None]
    return out


def _returns_properties(returns: Any) -> dict:
    """The record-like properties of a tool's ``returns`` schema (an object, a list of objects, or an object
    wrapping one list of objects)."""
    if not isinstance(returns, dict):
        return {}
    if returns.get("type") == "array" and isinstance(returns.get("items"), dict):
        return _returns_properties(returns["items"])
    props = returns.get("properties")
    if not isinstance(props, dict):
        return {}
    lists = [v for v in props.values() if isinstance(v, dict) and v.get("type") == "array"
             and isinstance(v.get("items"), dict) and isinstance(v["items"].get("properties"), dict)]
    if len(props) <= 3 and len(lists) == 1:
        return lists[0]["items"]["properties"]
    return props


# create-like verbs that make a record of their own about an existing one ("book_room(room_id)" books a
# room: a room_booking that refers to the room) -> the derived entity's suffix
_DERIVED = {"book": "booking", "reserve": "reservation", "request": "request", "apply": "application",
            "enroll": "enrollment", "subscribe": "subscription", "pay": "payment", "transfer": "transfer",
            "share": "share", "follow": "follow", "rate": "rating", "review": "review", "comment": "comment",
            "like": "like", "invite": "invitation", "attach": "attachment", "send": "message",
            "purchase": "purchase", "buy": "purchase", "schedule": "schedule", "record": "record", "log": "log",
            "submit": "submission", "issue": "issue", "upload": "upload", "save": "save", "start": "session",
            "open": "opening", "publish": "publication", "generate": "generation", "place": "placement",
            "rent": "rental", "hire": "hire", "deposit": "deposit", "withdraw": "withdrawal", "redeem": "redemption",
            "topup": "topup"}
_CLIENT_ID_VERBS = frozenset({"create", "add", "new", "register", "insert", "post", "make", "import", "write"})


def sub_collection(spec: ToolSpec) -> dict | None:
    """``add_tracks_to_playlist(playlist_id, track_ids)`` -> the owner entity (playlist), its id parameter,
    the items parameter and the list field it changes (``track_ids``), and whether items are ids.
    None where the tool is not an add/remove on a list that belongs to one record."""
    if spec.operation != "write":
        return None
    verb, tokens = split_name(spec.name)
    if verb not in SUB_ADD_VERBS and verb not in SUB_REMOVE_VERBS:
        return None
    cut = next((i for i, t in enumerate(tokens) if t in SUB_PREPOSITIONS), None)
    if not cut or cut == len(tokens) - 1:
        return None
    items_noun, owner = "_".join(tokens[:cut]), singular(tokens[-1])
    props = spec.parameters.get("properties") if isinstance(spec.parameters.get("properties"), dict) else {}
    required = [p for p in (spec.parameters.get("required") or []) if p in props]
    owner_param = next((p for p in required if id_entity(p)[0] is not None and id_entity(p)[0] != ""
                        and _norm(id_entity(p)[0]) == _norm(owner) and not id_entity(p)[1]), None)
    if owner_param is None:
        return None
    item_entity = singular(items_noun.split("_")[-1])
    for p in required:
        if p == owner_param:
            continue
        entity, many = id_entity(p)
        pschema = props[p] if isinstance(props[p], dict) else {}
        if entity and _norm(entity) == _norm(item_entity):
            return {"owner": owner, "owner_param": owner_param, "items_param": p, "item_entity": item_entity,
                    "field": f"{item_entity}_ids", "ids": True, "many": bool(many),
                    "op": "sub_add" if verb in SUB_ADD_VERBS else "sub_remove"}
        if _norm(singular(to_snake(p))) == _norm(item_entity) or _norm(to_snake(p)) == _norm(items_noun):
            return {"owner": owner, "owner_param": owner_param, "items_param": p, "item_entity": None,
                    "field": to_snake(p) if pschema.get("type") == "array" else plural(item_entity),
                    "ids": False, "many": pschema.get("type") == "array",
                    "op": "sub_add" if verb in SUB_ADD_VERBS else "sub_remove"}
    return None


def tool_entity(spec: ToolSpec) -> str:
    """The entity a tool acts on.

    "update_customer_email(customer_id, email)" acts on customer; "set_roaming(line_id, ...)" changes a line
    (a write with no id of its own changes the record its required id names); "book_room(room_id)" creates a
    room_booking; "add_order_tip(order_id, ...)" creates an order_tip.
    """
    sub = sub_collection(spec)
    if sub is not None:
        return sub["owner"]
    noun = noun_of(spec.name, spec.http.path if spec.http else None)
    verb, tokens = split_name(spec.name)
    props = spec.parameters.get("properties") if isinstance(spec.parameters.get("properties"), dict) else {}
    required = [p for p in (spec.parameters.get("required") or []) if p in props]
    id_params = [(p, *id_entity(p)) for p in sorted(props)]
    own = [p for p, e, many in id_params if not many and (e is None or _norm(e) == _norm(noun))]
    creates = spec.operation == "write" and verb in CREATE_VERBS
    if creates or (spec.operation == "write" and verb in COMPUTED_VERBS):
        names_noun = [p for p, e, many in id_params if e and _norm(e) == _norm(noun)]
        if verb in COMPUTED_VERBS and verb in _DERIVED and any(p in required for p in names_noun):
            return f"{noun}_{_DERIVED[verb]}"  # book_flight(flight_ids): a flight_booking about flights
        if own and verb not in _CLIENT_ID_VERBS and verb in _DERIVED and any(p in required for p in own):
            return f"{noun}_{_DERIVED[verb]}"
        return noun
    if "_" in noun and not own:
        last = [t for t in tokens if t not in ("by", "for", "of", "with", "from", "in")]
        for p, e, many in id_params:
            if e and not many and noun.startswith(e + "_"):
                # list_patient_appointments(patient_id) lists appointments: the plural names what is listed
                if spec.operation == "read" and last and singular(last[-1]) != last[-1] \
                        and noun.endswith("_" + singular(last[-1])):
                    return noun[len(e) + 1:]
                return e
    if spec.operation == "write" and not own:
        for p, e, many in id_params:
            if e and not many and p in required:
                return e
    return noun


def locator_params(binding: dict, required) -> list[str]:
    """The arguments a write finds its record by: its id, else its references, else its required fields."""
    roles = binding["params"]
    ids = [p for p in sorted(roles) if roles[p]["role"] == "id"]
    if ids:
        return ids[:1]
    refs = [p for p in sorted(roles) if roles[p]["role"] == "ref"]
    return refs or [p for p in sorted(roles) if roles[p]["role"] == "field" and p in (required or [])]


class SchemaBuilder:
    """Collections plus bindings, grown one tool at a time (sorted by name, so the result is stable)."""

    def __init__(self, domain_id: str, collections: dict | None = None, *, source: str = "tools"):
        self.domain_id = domain_id
        self.collections: dict[str, dict] = collections or {}
        self.bindings: dict[str, dict] = {}
        self.source = source

    # --- collections ---------------------------------------------------------------------------------
    def find_collection(self, entity: str) -> str | None:
        if not entity:
            return None
        target = _norm(entity)
        for name, coll in sorted(self.collections.items()):
            if target in (_norm(coll["entity"]), _norm(name), _norm(singular(name))):
                return name
        # "user_profile" matches a collection "profiles" (snapshots name collections their own way)
        last = _norm(entity.split("_")[-1])
        for name, coll in sorted(self.collections.items()):
            if last and last in (_norm(coll["entity"]), _norm(singular(name))):
                return name
        return None

    def ensure_collection(self, entity: str, id_type: str = "string") -> str:
        found = self.find_collection(entity)
        if found:
            return found
        name = plural(entity)
        id_field = f"{entity}_id"
        self.collections[name] = {
            "entity": entity, "id_field": id_field, "id_type": id_type, "id_prefix": entity.replace("_", "-"),
            "fields": {id_field: {"type": id_type}}, "references": {}, "status_field": None,
            "status_values": [], "status_targets": [],
        }
        return name

    def field_for(self, coll_name: str, param: str) -> str | None:
        coll = self.collections[coll_name]
        target = _norm(param)
        for field in sorted(coll["fields"]):
            if _norm(field) == target:
                return field
        return None

    def add_field(self, coll_name: str, name: str, schema: dict) -> str:
        coll = self.collections[coll_name]
        existing = self.field_for(coll_name, name)
        if existing:
            if existing == coll.get("status_field") and schema.get("enum"):
                # a declared status enum wins over the made-up one; transitions' targets join it
                values = list(schema["enum"]) + [v for v in coll.get("status_targets", []) if v not in schema["enum"]]
                coll["status_values"] = values
                coll["fields"][existing] = {"type": "string", "enum": values}
            elif "enum" in schema and "enum" not in coll["fields"][existing] \
                    and coll["fields"][existing].get("type") == schema.get("type"):
                # a later tool may know the enum the first one did not
                coll["fields"][existing] = dict(schema)
            return existing
        field = to_snake(name) if self.source == "tools" else name
        coll["fields"][field] = dict(schema)
        return field

    # --- tools -----------------------------------------------------------------------------------------
    def bind(self, spec: ToolSpec, entity: str | None = None) -> dict:
        verb, _ = split_name(spec.name)
        noun = entity or tool_entity(spec)
        params = spec.parameters.get("properties") if isinstance(spec.parameters.get("properties"), dict) else {}
        required = [p for p in (spec.parameters.get("required") or []) if p in params]
        coll_name = self.ensure_collection(noun)
        coll = self.collections[coll_name]
        read = spec.operation == "read"
        roles: dict[str, dict] = {}
        sub = sub_collection(spec)
        for param in sorted(params):
            pschema = params[param] if isinstance(params[param], dict) else {}
            snake = to_snake(param)
            if sub is not None and param == sub["items_param"]:
                continue  # the items of a sub-collection op name a list field, bound below
            entity, many = id_entity(param)
            many = many or (entity != "" and pschema.get("type") == "array")  # an "id" that takes a list
            own = entity is None or (bool(entity) and _norm(entity) in (_norm(coll["entity"]), _norm(coll_name)))
            if own and not many:
                id_t = _field_schema(pschema)["type"]
                id_t = "integer" if id_t == "number" else id_t  # a numeric id is a whole number
                coll.setdefault("id_evidence", []).append(id_t)
                if id_t in ("integer", "string") and coll["id_type"] != id_t and self.source == "tools":
                    coll["id_type"] = id_t
                    coll["fields"][coll["id_field"]] = {"type": id_t}
                roles[param] = {"role": "id", "field": coll["id_field"]}
            elif own and many:
                roles[param] = {"role": "id_in", "field": coll["id_field"]}
            elif entity:
                ref = self.ensure_collection(entity, _field_schema(pschema)["type"] if not many else "string")
                field = self.add_field(coll_name, param, _field_schema(pschema))
                coll["references"][field] = ref
                roles[param] = {"role": "ref", "field": field, "ref": ref, "many": bool(many)}
            elif read and snake in LIMIT_PARAMS and _field_schema(pschema)["type"] in ("integer", "number"):
                roles[param] = {"role": "limit"}
            elif read and snake in OFFSET_PARAMS and _field_schema(pschema)["type"] in ("integer", "number"):
                roles[param] = {"role": "offset"}
            elif read and snake in PAGE_PARAMS:
                roles[param] = {"role": "page"}
            elif read and snake in QUERY_PARAMS and _field_schema(pschema)["type"] == "string" \
                    and not self.field_for(coll_name, param):
                roles[param] = {"role": "query"}
            elif read and snake in SORT_PARAMS and _field_schema(pschema)["type"] == "string":
                roles[param] = {"role": "sort"}
            elif read and snake.split("_")[0] in ("min", "max") and len(snake) > 4 \
                    and _field_schema(pschema)["type"] in ("integer", "number"):
                # min_rating / max_price bound a field of the record, they are not a field of their own
                base = snake[4:]
                field = self.field_for(coll_name, base) or self.add_field(coll_name, base, _field_schema(pschema))
                roles[param] = {"role": snake[:3], "field": field}
            else:
                fschema = _field_schema(pschema)
                field = self.add_field(coll_name, param, fschema)
                roles[param] = {"role": "field", "field": field}
                if fschema["type"] == "object":
                    roles[param]["filter"] = False  # an input to compute with, not a value to match
        for prop, pschema in sorted(_returns_properties(spec.returns).items()):
            entity, _ = id_entity(prop)
            if entity is None or (entity and self.find_collection(entity) == coll_name
                                  and _norm(prop) == _norm(coll["id_field"])):
                continue  # the id field already exists
            if entity:
                ref = self.ensure_collection(entity)
                field = self.add_field(coll_name, prop, _field_schema(pschema))
                coll["references"].setdefault(field, ref)
            else:
                self.add_field(coll_name, prop, _field_schema(pschema))

        if sub is not None:
            pschema = params[sub["items_param"]] if isinstance(params[sub["items_param"]], dict) else {}
            item = _field_schema(pschema.get("items") if pschema.get("type") == "array" else pschema)
            item_type = item["type"] if item["type"] in ("string", "integer", "number") else "string"
            field = self.add_field(coll_name, sub["field"], {"type": "array", "items": {"type": item_type}})
            role = {"role": "items", "field": field, "many": sub["many"]}
            if sub["ids"]:
                role["ref"] = self.ensure_collection(sub["item_entity"], item_type)
                coll["references"][field] = role["ref"]
            roles[sub["items_param"]] = role

        has_id = any(r["role"] == "id" for r in roles.values())
        has_ref = any(r["role"] == "ref" for r in roles.values())
        sets_something = any(r["role"] in ("field", "ref") for r in roles.values())
        if read:
            if has_id:
                kind = "get"
            elif verb in ("get", "show", "read", "fetch", "retrieve", "view", "describe", "lookup", "check") \
                    and any(p in required for p in roles if roles[p]["role"] in ("field", "ref")):
                kind = "search"
            else:
                kind = "list"
        elif sub is not None and has_id:
            kind = sub["op"]
        elif verb in DELETE_VERBS:
            kind = "delete"
        elif verb in STATUS_VERBS:
            kind = "transition"
        elif verb in COMPUTED_VERBS and has_ref and not has_id:
            kind = "action"
        elif verb in UPDATE_VERBS:
            kind = "update"
        elif verb in CREATE_VERBS:
            kind = "create"
        else:
            kind = "other" if has_id else "create"
        if kind == "create" and has_id and verb not in CREATE_VERBS and not required:
            kind = "update"
        if kind == "update" and not sets_something:
            kind = "other"  # "mark_patient_arrived(appointment_id)": nothing to set, the call itself is the change
        if kind == "update" and not has_id:
            # without an id the record is found by its references, else by the required fields: those locate,
            # they do not set; an update whose every argument locates has nothing left to set
            locators = set(locator_params({"params": roles}, required))
            if not any(r["role"] in ("field", "ref") and p not in locators for p, r in roles.items()):
                kind = "other"
        binding = {"kind": kind, "collection": coll_name, "params": roles, "verb": verb or "",
                   "operation": spec.operation}
        if sub is not None and kind == sub["op"]:
            binding["items_param"] = sub["items_param"]
            binding["list_field"] = roles[sub["items_param"]]["field"]
        if kind == "transition":
            target = STATUS_VERBS[verb]
            binding["status_value"] = target
            binding["terminal"] = target in _TERMINAL
            self._ensure_status(coll_name, target)
        if kind == "action":
            self._computed(coll_name, binding, params)
        if kind == "other":
            coll["fields"].setdefault("last_action", {"type": "string"})
            coll["fields"].setdefault("action_count", {"type": "integer"})
        if kind == "create":
            for field, fschema in coll["fields"].items():
                if field == "status" and "enum" not in fschema and not coll["status_field"]:
                    self._ensure_status(coll_name, None)
        self.bindings[spec.name] = binding
        return binding

    def _computed(self, coll_name: str, binding: dict, params: dict) -> None:
        """A computed action records an amount and a status; the record it books or pays must carry what
        the computation reads (availability, a price), and a payer its funds."""
        coll = self.collections[coll_name]
        coll["fields"].setdefault("amount", {"type": "number"})
        self._ensure_status(coll_name, None)
        status = coll["fields"][coll["status_field"]]
        if "confirmed" not in status["enum"]:
            status["enum"] = list(status["enum"]) + ["confirmed"]
            coll["status_values"] = list(status["enum"])
        refs = [r for r in binding["params"].values() if r["role"] == "ref"]
        offer = next((r["ref"] for r in refs if _norm(self.collections[r["ref"]]["entity"])
                      in _norm(self.collections[coll_name]["entity"])), None) or (refs[0]["ref"] if refs else None)
        binding["offer"] = offer
        payer = next((r["ref"] for r in refs if r["ref"] != offer and any(
            w in self.collections[r["ref"]]["entity"] for w in ("payment", "account", "wallet", "card"))), None)
        binding["payer"] = payer
        if offer is not None:
            fields = self.collections[offer]["fields"]
            if not pick(fields, PRICE_WORDS):
                fields["price"] = {"type": "number"}
            if binding["verb"] not in ("pay", "transfer", "deposit", "withdraw", "redeem") \
                    and not pick(fields, AVAILABILITY_WORDS):
                fields["available_quantity"] = {"type": "integer"}
        if payer is not None and not pick(self.collections[payer]["fields"], FUNDS_WORDS):
            self.collections[payer]["fields"]["balance"] = {"type": "number"}

    def _status_candidate(self, coll_name: str, skip: str | None = None) -> str | None:
        coll = self.collections[coll_name]
        fields = {f: v for f, v in coll["fields"].items() if f != skip}
        for name in ("status", f"{coll['entity']}_status", f"{coll['entity'].split('_')[-1]}_status", "state"):
            if name in fields and fields[name].get("type") == "string":
                return name
        named = [f for f in sorted(fields) if f.endswith("_status") and fields[f].get("type") == "string"]
        return named[0] if len(named) == 1 else None

    def _ensure_status(self, coll_name: str, target: str | None) -> None:
        coll = self.collections[coll_name]
        field = coll.get("status_field") or self._status_candidate(coll_name) or "status"
        if not coll.get("status_field") and field not in coll["fields"]:
            coll["status_made"] = True  # made up here: a status field some later tool declares replaces it
        coll["status_field"] = field
        targets = coll.setdefault("status_targets", [])
        if target and target not in targets:
            targets.append(target)
        current = coll["fields"].get(field) or {"type": "string"}
        values = list(current.get("enum") or coll.get("status_values") or _BASE_STATUSES)
        if target and target not in values:
            values.append(target)
        coll["status_values"] = values
        coll["fields"][field] = {"type": "string", "enum": values}

    # --- result ----------------------------------------------------------------------------------------
    def _settle_id_types(self) -> None:
        """One id type per collection, and reference fields that can hold its ids.

        Tools of one API disagree (``route_id`` integer here, string there): a collection takes integer ids
        when any tool or reference says so (an integer id also serves a string parameter as its digits), and
        a reference declared as an object or a boolean holds the plain id.
        """
        if self.source != "tools":
            return
        integer = {n for n, c in self.collections.items() if "integer" in c.get("id_evidence", [])}
        for coll in self.collections.values():
            for field, ref in coll["references"].items():
                fs = coll["fields"].get(field, {})
                t = (fs.get("items") or {}).get("type") if fs.get("type") == "array" else fs.get("type")
                if t in ("integer", "number") and ref in self.collections:
                    integer.add(ref)
        for name, coll in self.collections.items():
            coll["id_type"] = "integer" if name in integer else "string"
            coll["fields"][coll["id_field"]] = {"type": coll["id_type"]}
        for coll in self.collections.values():
            for field, ref in coll["references"].items():
                fs = coll["fields"].get(field)
                if fs is None or ref not in self.collections or field == coll["id_field"]:
                    continue
                if "enum" in fs:
                    # a reference holds the ids of the records it names; a spec's enum of codes (a market's
                    # locale, a product code) is not those ids, and no record could hold both
                    fs = coll["fields"][field] = {k: v for k, v in fs.items() if k != "enum"}
                id_t = self.collections[ref]["id_type"]
                if fs.get("type") == "array":
                    if (fs.get("items") or {}).get("type") not in ("string", "integer"):
                        fs["items"] = {"type": id_t}
                    elif fs["items"]["type"] == "integer" and id_t == "string":
                        fs["items"] = {"type": "string"}
                elif fs.get("type") not in ("string", "integer") or (fs.get("type") == "integer" and id_t == "string"):
                    coll["fields"][field] = {"type": id_t}
                elif fs.get("type") == "number":
                    coll["fields"][field] = {"type": "integer"}

    def finish(self) -> dict:
        self._settle_id_types()
        collections = {}
        for name in sorted(self.collections):
            coll = self.collections[name]
            better = self._status_candidate(name, skip="status") if coll["status_field"] == "status" else None
            if better and coll.get("status_made") and self.source == "tools":
                # a field some later tool declared (appointment_status) is the status the made-up one stood for
                made = coll["fields"].pop("status")
                declared = coll["fields"][better].get("enum") or []
                values = list(declared) + [v for v in made.get("enum", []) if v not in declared
                                           and (v in coll.get("status_targets", []) or not declared)]
                coll["fields"][better] = {"type": "string", "enum": values}
                coll["status_field"], coll["status_values"] = better, values
                for binding in self.bindings.values():
                    for role in binding["params"].values():
                        if binding["collection"] == name and role.get("field") == "status":
                            role["field"] = better
            if coll["status_field"]:
                values = coll["fields"][coll["status_field"]].get("enum") or coll["status_values"]
                coll["status_values"] = list(values)
            props = {}
            for field in sorted(coll["fields"]):
                schema = dict(coll["fields"][field])
                if field in coll["references"]:
                    schema["x-ref"] = coll["references"][field]
                props[field] = schema if field == coll["id_field"] else _nullable(schema)
            collections[name] = {
                "entity": coll["entity"], "id_field": coll["id_field"], "id_type": coll["id_type"],
                "id_prefix": coll["id_prefix"], "references": dict(sorted(coll["references"].items())),
                "status_field": coll["status_field"], "status_values": list(coll["status_values"]),
                "transitions": transitions_for(list(coll["status_values"]), list(coll.get("status_targets") or []))
                if coll["status_field"] else {},
                "record": {"type": "object", "properties": props, "required": [coll["id_field"]]},
            }
        state_schema = {
            "type": "object",
            "properties": {
                **{name: {"type": "object", "additionalProperties": c["record"]} for name, c in collections.items()},
                "_meta": {"type": "object"},
            },
            "required": sorted(collections),
        }
        return {"domain_id": self.domain_id, "source": self.source, "collections": collections,
                "bindings": dict(sorted(self.bindings.items())), "state_schema": state_schema}


def derive_schema(domain_id: str, tools: list[ToolSpec]) -> dict:
    """The schema and bindings of a domain, derived from its tools alone."""
    builder = SchemaBuilder(domain_id)
    ordered = sorted(tools, key=lambda t: t.name)
    # nouns first, so that "customer_id" in create_order finds the collection get_customer names
    entities = {spec.name: tool_entity(spec) for spec in ordered}
    named = set(entities.values())
    suffixes = set(_DERIVED.values())
    for name, entity in entities.items():
        # book_flight makes a flight_booking; where get_booking / cancel_booking act on bookings, it is one of them
        head, _, last = entity.rpartition("_")
        if head and last in suffixes and last in named:
            entities[name] = last
    for spec in ordered:
        builder.ensure_collection(entities[spec.name])
    for spec in ordered:
        builder.bind(spec, entity=entities[spec.name])
    return builder.finish()


# --- bring your own database --------------------------------------------------------------------------------
def _infer_type(values: list) -> dict:
    types = sorted({json_type(v) for v in values if v is not None})
    if not types:
        return {"type": "string"}
    if types == ["integer", "number"]:
        return {"type": "number"}
    t = types[0] if len(types) == 1 else "string"
    out: dict = {"type": t}
    if t == "array":
        item_types = sorted({json_type(i) for v in values if isinstance(v, list) for i in v})
        out["items"] = {"type": item_types[0] if len(item_types) == 1 else "string"}
    return out


def normalise_snapshot(snapshot: dict) -> tuple[dict, dict]:
    """A snapshot as ``{collection: {id: record}}`` plus each collection's id field.

    Accepts collections given as lists of records (keyed by their id field: ``<entity>_id``, ``id`` or the
    first unique ``*_id`` field) or as objects keyed by id already.
    """
    if not isinstance(snapshot, dict):
        raise ValueError(f"snapshot must be a JSON object of collections, got {type(snapshot).__name__}")
    state: dict = {}
    id_fields: dict = {}
    for name in sorted(snapshot):
        if name.startswith("_"):
            continue
        rows = snapshot[name]
        entity = singular(to_snake(name))
        if isinstance(rows, list):
            records = [r for r in rows if isinstance(r, dict)]
            candidates = [f"{entity}_id", "id", f"{entity}Id"] + sorted(
                {k for r in records for k in r if to_snake(k).endswith("_id")})
            id_field = None
            for cand in candidates:
                values = [r.get(cand) for r in records]
                if records and all(isinstance(v, (str, int)) for v in values) and len(set(values)) == len(values):
                    id_field = cand
                    break
            if id_field is None:
                id_field = f"{entity}_id"
                records = [{id_field: f"{entity}-{i + 1}", **r} for i, r in enumerate(records)]
            state[name] = {str(r[id_field]): r for r in records}
        elif isinstance(rows, dict):
            records = {str(k): v for k, v in rows.items() if isinstance(v, dict)}
            id_field = None
            for cand in sorted({k for r in records.values() for k in r}):
                if records and all(str(r.get(cand)) == key for key, r in records.items()):
                    id_field = cand
                    break
            id_field = id_field or f"{entity}_id"
            state[name] = records
        else:
            raise ValueError(f"snapshot collection '{name}' must be a list or an object of records, "
                             f"got {type(rows).__name__}")
        id_fields[name] = id_field
    return state, id_fields


def infer_snapshot_schema(domain_id: str, tools: list[ToolSpec], snapshot: dict) -> tuple[dict, dict]:
    """(schema with bindings, normalised state) for a user-supplied database snapshot."""
    state, id_fields = normalise_snapshot(snapshot)
    collections = {}
    for name, records in state.items():
        entity = singular(to_snake(name))
        id_field = id_fields[name]
        keys = sorted({k for r in records.values() for k in r})
        fields = {k: _infer_type([r.get(k) for r in records.values()]) for k in keys}
        id_values = [r.get(id_field) for r in records.values() if id_field in r]
        id_type = "integer" if id_values and all(json_type(v) == "integer" for v in id_values) else "string"
        fields[id_field] = {"type": id_type}
        collections[name] = {"entity": entity, "id_field": id_field, "id_type": id_type,
                             "id_prefix": entity.replace("_", "-"), "fields": fields, "references": {},
                             "status_field": None, "status_values": [], "status_targets": []}
    # references: a field named like another collection's id field whose values are ids there
    for name, coll in collections.items():
        for field in coll["fields"]:
            if field == coll["id_field"]:
                continue
            entity, _ = id_entity(field)
            for other, ocoll in collections.items():
                if other != name and entity and _norm(entity) in (_norm(ocoll["entity"]), _norm(other)):
                    coll["references"][field] = other
        if "status" in coll["fields"] and coll["fields"]["status"]["type"] == "string":
            values = sorted({r.get("status") for r in state[name].values() if isinstance(r.get("status"), str)})
            coll["status_field"] = "status"
            coll["status_values"] = values
            coll["fields"]["status"] = {"type": "string", "enum": values} if values else {"type": "string"}
    builder = SchemaBuilder(domain_id, collections, source="snapshot")
    for spec in sorted(tools, key=lambda t: t.name):
        builder.bind(spec)
    schema = builder.finish()
    for name in schema["collections"]:
        state.setdefault(name, {})
    return schema, state
