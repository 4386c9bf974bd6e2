"""Semantic validation: does each tool do what its kind (kinds.py) says, on every initial state?

A tool is called through the real sandbox with arguments sampled from each initial state; the state before,
the state after and the output are compared by the properties of the tool's kind:

- every read: ``read_only`` (the state hash does not move);
- get: ``returns_requested`` (the record of the id it was given, as stored);
- list: ``filters_match`` (every row matches every filter and bound given), ``rows_exist`` (rows are records
  of its collection), ``complete`` (without paging or a text query, every matching record is returned);
- search: ``filters_match`` on the one record returned;
- create: ``adds_one`` (exactly one new record in its collection, nothing else changed),
  ``returns_created``, ``stores_given`` (the given fields are stored as given);
- update: ``changes_only_given`` (one record, only the given fields), ``stores_given``;
- delete: ``removes_exactly_one``;
- sub_add / sub_remove: ``touches_only_list`` (one record, one list field), ``items_added`` / ``items_removed``
  (the named items are in / out, the other items stay);
- transition: ``follows_edges`` (from an allowed source to the target), ``touches_only_status``,
  ``second_call_fails`` (a second cancel is an error and changes nothing);
- action: ``adds_one`` (one new record; other changes only on the records it names), ``availability_taken``
  (the offer's availability drops by the quantity), ``funds_taken`` (the payer's funds drop by the amount);
- other: ``touches_only_target`` (one record changed, none added or removed);
- every write: ``writes`` (a successful call changes the state), ``unknown_id_rejected`` (an id that does not
  exist is a ToolError) and ``failed_write_unchanged`` (a failed call leaves the caller's state as it was).

A property that breaks on any state fails the tool; a domain is semantically valid when no tool fails.
"""

from __future__ import annotations

import copy
import random
from typing import Any

from pydantic import BaseModel, Field

from agentscaler_dagster.contracts import ToolSpec, state_hash
from agentscaler_dagster.envgen.kinds import (
    AVAILABILITY_WORDS,
    FUNDS_WORDS,
    QUANTITY_WORDS,
    pick,
)

_MISSING_TEXT = "zz-missing-404"
_MISSING_INT = 987654321


class ToolSemantics(BaseModel):
    tool: str
    kind: str
    calls: int = Field(default=0, description="Successful calls the properties were checked on.")
    checked: list[str] = Field(default_factory=list, description="Properties checked at least once.")
    failed: list[str] = Field(default_factory=list, description="'property: what broke' (first case per property).")


def _records(state: dict) -> dict:
    return {k: v for k, v in state.items() if not str(k).startswith("_") and isinstance(v, dict)}


def _diff(before: dict, after: dict) -> dict[str, dict[str, set]]:
    """{collection: {added, removed, changed}} over record keys; ``_meta`` and other bookkeeping ignored."""
    out: dict[str, dict[str, set]] = {}
    b, a = _records(before), _records(after)
    for name in sorted(set(b) | set(a)):
        tb, ta = b.get(name, {}), a.get(name, {})
        added = set(ta) - set(tb)
        removed = set(tb) - set(ta)
        changed = {k for k in set(ta) & set(tb) if ta[k] != tb[k]}
        if added or removed or changed:
            out[name] = {"added": added, "removed": removed, "changed": changed}
    return out


def _fields_changed(old: dict, new: dict) -> set[str]:
    return {f for f in set(old) | set(new) if old.get(f) != new.get(f)}


def _matches(value: Any, wanted: Any) -> bool:
    # the documented filter rule: equal, text case-insensitively; a list field holds the wanted item
    if isinstance(wanted, list):
        return all(_matches(value, w) for w in wanted) if isinstance(value, list) else value in wanted
    if isinstance(value, list):
        return wanted in value
    if isinstance(value, str) and isinstance(wanted, str):
        return value.lower() == wanted.lower()
    return value == wanted


def _num(value: Any) -> float | None:
    return None if isinstance(value, bool) or not isinstance(value, (int, float)) else float(value)


def _missing_like(value: Any) -> Any:
    if isinstance(value, list):
        return [_missing_like(value[0] if value else "x")]
    return _MISSING_INT if isinstance(value, int) and not isinstance(value, bool) else _MISSING_TEXT


class _Checker:
    def __init__(self, env, spec: ToolSpec, schema: dict):
        self.env, self.spec, self.schema = env, spec, schema
        self.binding = schema["bindings"][spec.name]
        self.kind = self.binding["kind"]
        self.coll_name = self.binding["collection"]
        self.coll = schema["collections"][self.coll_name]
        self.result = ToolSemantics(tool=spec.name, kind=self.kind)

    def check(self, prop: str, ok: bool, detail: str) -> None:
        if prop not in self.result.checked:
            self.result.checked.append(prop)
        if not ok and not any(f.startswith(prop + ":") for f in self.result.failed):
            self.result.failed.append(f"{prop}: {detail}")

    def params(self, *roles: str) -> list[tuple[str, dict]]:
        return [(p, r) for p, r in sorted(self.binding["params"].items()) if r["role"] in roles]

    def target_key(self, args: dict, before: dict, after: dict) -> str | None:
        ids = [p for p, _ in self.params("id")]
        if ids and ids[0] in args:
            return str(args[ids[0]])
        # a write located by its other arguments: the one record of its collection that changed
        d = _diff(before, after).get(self.coll_name, {})
        keys = sorted(d.get("changed", set()) | d.get("removed", set()))
        return keys[0] if len(keys) == 1 else None

    # --- one successful call -------------------------------------------------------------------------
    def on_success(self, args: dict, before: dict, after: dict, out: Any) -> None:
        self.result.calls += 1
        kind, name, coll = self.kind, self.coll_name, self.coll
        diff = _diff(before, after)
        given = {r["field"]: args[p] for p, r in self.params("field", "ref") if args.get(p) is not None}
        if kind in ("get", "list", "search"):
            self.check("read_only", state_hash(before) == state_hash(after), f"changed {sorted(diff) or ['_meta']}")
        elif not self._noop_add(args, before):
            self.check("writes", state_hash(before) != state_hash(after), f"returned without a change for {args}")
        if kind == "get":
            key = self.target_key(args, before, after)
            record = _records(before).get(name, {}).get(key)
            self.check("returns_requested", out == record,
                       f"asked for {coll['entity']} '{key}', got {str(out)[:120]}")
        elif kind in ("list", "search"):
            rows = out if kind == "list" else [out]
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                self.check("filters_match", False, f"output is not a list of records: {str(out)[:120]}")
                return
            filters = {r["field"]: args[p] for p, r in self.params("field", "ref")
                       if args.get(p) is not None and r.get("filter", True)}
            bounds = [(r["field"], r["role"], args[p]) for p, r in self.params("min", "max") if args.get(p) is not None]

            def fits(row: dict) -> bool:
                if not all(_matches(row.get(f), w) for f, w in filters.items()):
                    return False
                for field, role, limit in bounds:
                    have = _num(row.get(field))
                    if have is None or (have < limit if role == "min" else have > limit):
                        return False
                return True

            bad = next((r for r in rows if not fits(r)), None)
            self.check("filters_match", bad is None,
                       f"{coll['entity']} '{(bad or {}).get(coll['id_field'])}' does not match {filters} {bounds}")
            table = _records(before).get(name, {})
            stored = list(table.values())
            self.check("rows_exist", all(r in stored for r in rows), f"a row is not a record of {name}")
            paged = any(args.get(p) is not None for p, _ in self.params("limit", "offset", "page", "query", "id_in"))
            if kind == "list" and not paged:
                expected = sum(1 for r in stored if fits(r))
                self.check("complete", len(rows) == expected,
                           f"{len(rows)} rows for {filters or 'no filter'}, {expected} records match")
        elif kind == "create":
            d = diff.get(name, {})
            added = sorted(d.get("added", set()))
            others = {c: v for c, v in diff.items() if c != name}
            ok = len(added) == 1 and not d.get("removed") and not d.get("changed") and not others
            self.check("adds_one", ok, f"added {added} to {name}, other changes {sorted(others)}")
            if len(added) == 1:
                record = _records(after)[name][added[0]]
                self.check("returns_created", out == record, f"returned {str(out)[:120]}")
                wrong = {f: v for f, v in given.items() if record.get(f) != v}
                self.check("stores_given", not wrong, f"stored {[(f, record.get(f)) for f in wrong]} for {wrong}")
        elif kind == "delete":
            key = self.target_key(args, before, after)
            d = diff.get(name, {})
            others = sorted(c for c in diff if c != name)
            ok = d.get("removed") == {key} and not d.get("added") and not d.get("changed") and not others
            self.check("removes_exactly_one", ok, f"asked to delete {coll['entity']} '{key}'; removed "
                       f"{sorted(d.get('removed', set()))}, changed {sorted(d.get('changed', set()))} and {others}")
        elif kind in ("update", "other", "sub_add", "sub_remove", "transition"):
            key = self.target_key(args, before, after)
            d = diff.get(name, {})
            others = {c: v for c, v in diff.items() if c != name}
            one = not d.get("added") and not d.get("removed") and set(d.get("changed", set())) <= {key} and not others
            old = _records(before).get(name, {}).get(key) or {}
            new = _records(after).get(name, {}).get(key) or {}
            changed = _fields_changed(old, new)
            if kind == "update":
                self.check("changes_only_given", one and changed <= set(given),
                           f"changed {sorted(changed)} of {coll['entity']} '{key}' (given {sorted(given)}); "
                           f"other records: {sorted(d.get('changed', set()) - {key})} {sorted(others)}")
                wrong = {f: v for f, v in given.items() if f != coll["id_field"] and new.get(f) != v}
                self.check("stores_given", not wrong, f"{wrong} not stored on '{key}'")
            elif kind == "other":
                self.check("touches_only_target", one, f"changed records beyond '{key}': {sorted(diff)}")
            elif kind in ("sub_add", "sub_remove"):
                field = self.binding["list_field"]
                self.check("touches_only_list", one and changed <= {field},
                           f"changed {sorted(changed)} of '{key}' and {sorted(others) or 'no other collection'}")
                items = args.get(self.binding["items_param"])
                items = items if isinstance(items, list) else [items]
                was, now = old.get(field) or [], new.get(field) or []
                if kind == "sub_add":
                    ok = all(i in now for i in items) and all(i in now for i in was)
                    self.check("items_added", ok, f"{field} went from {was} to {now} adding {items}")
                else:
                    ok = not any(i in now for i in items) and [i for i in was if i not in items] == now
                    self.check("items_removed", ok, f"{field} went from {was} to {now} removing {items}")
            else:
                field = coll.get("status_field")
                target = self.binding.get("status_value")
                allowed = (coll.get("transitions") or {}).get(target, [])
                self.check("follows_edges", old.get(field) in allowed and new.get(field) == target,
                           f"{field} moved {old.get(field)!r} -> {new.get(field)!r}; allowed: {allowed} -> {target}")
                extra = {r["field"] for p, r in self.params("field", "ref") if args.get(p) is not None}
                self.check("touches_only_status", one and changed <= {field} | extra,
                           f"changed {sorted(changed)} and {sorted(others) or 'no other collection'}")
                again = self.env.call(copy.deepcopy(after), self.spec.name, args)
                self.check("second_call_fails", not again.ok,
                           f"a second {self.spec.name} on '{key}' succeeded ({field}={new.get(field)!r})")
        elif kind == "action":
            d = diff.get(name, {})
            added = sorted(d.get("added", set()))
            named = {str(v) for p, r in self.params("ref") for v in
                     (args.get(p) if isinstance(args.get(p), list) else [args.get(p)]) if v is not None}
            stray = {c: sorted(v["changed"] - named) for c, v in diff.items() if c != name and (
                v["added"] or v["removed"] or v["changed"] - named)}
            self.check("adds_one", len(added) == 1 and not d.get("changed") and not d.get("removed") and not stray,
                       f"added {added} to {name}; changes beyond the named records: {stray}")
            self._amounts(args, before, after, out)

    def _amounts(self, args: dict, before: dict, after: dict, out: Any) -> None:
        offer, payer = self.binding.get("offer"), self.binding.get("payer")
        fields = {p: r["field"] for p, r in self.binding["params"].items() if r["role"] == "field"}
        qty_param = pick(fields, QUANTITY_WORDS)
        quantity = args.get(qty_param, 1) if qty_param else 1
        for coll_name, words, prop in ((offer, AVAILABILITY_WORDS, "availability_taken"),
                                       (payer, FUNDS_WORDS, "funds_taken")):
            if coll_name is None:
                continue
            props = self.schema["collections"][coll_name]["record"]["properties"]
            field = pick(props, words)
            if field is None or (prop == "availability_taken" and self.binding["verb"] in
                                 ("pay", "transfer", "deposit", "withdraw", "redeem")):
                continue
            param = next(p for p, r in sorted(self.binding["params"].items())
                         if r["role"] == "ref" and r["ref"] == coll_name)
            for key in (args.get(param) if isinstance(args.get(param), list) else [args.get(param)]):
                if key is None:
                    continue
                was = _num((_records(before).get(coll_name, {}).get(str(key)) or {}).get(field))
                now = _num((_records(after).get(coll_name, {}).get(str(key)) or {}).get(field))
                if was is None or now is None:
                    continue
                if prop == "availability_taken":
                    self.check(prop, abs((was - now) - quantity) < 1e-9,
                               f"{field} of '{key}' went {was} -> {now} for quantity {quantity}")
                else:
                    amount = _num((out or {}).get("amount")) if isinstance(out, dict) else None
                    self.check(prop, amount is not None and abs((was - now) - amount) < 0.011,
                               f"{field} of '{key}' went {was} -> {now}, amount recorded {amount}")

    def _noop_add(self, args: dict, before: dict) -> bool:
        """Adding items that are all in the list already is documented as a no-op (kinds.py)."""
        if self.kind != "sub_add":
            return False
        key = self.target_key(args, before, before)
        items = args.get(self.binding["items_param"])
        items = items if isinstance(items, list) else [items]
        was = (_records(before).get(self.coll_name, {}).get(key) or {}).get(self.binding["list_field"]) or []
        return all(i in was for i in items)

    # --- the call that must fail ---------------------------------------------------------------------
    def unknown_id(self, args: dict, state: dict) -> None:
        # a create may choose its own new id: there the references are what must exist
        own = [] if self.kind == "create" else [p for p, _ in self.params("id")]
        params = own or [p for p, _ in self.params("ref")]
        params = [p for p in params if args.get(p) is not None]
        if not params:
            return
        bad = dict(args)
        bad[params[0]] = _missing_like(args[params[0]])
        before = state_hash(state)
        outcome = self.env.call(state, self.spec.name, bad)
        self.check("unknown_id_rejected", not outcome.ok, f"{params[0]}={bad[params[0]]!r} was accepted")
        if not outcome.ok:
            self.check("failed_write_unchanged", state_hash(state) == before and
                       state_hash(outcome.state) == before, "a failed call changed the state")


def check_semantics(env, specs: list[ToolSpec], schema: dict, states: dict[str, dict], *, seed: int = 0,
                    tries: int = 3) -> list[ToolSemantics]:
    """Property checks of every tool's kind on every initial state (see the module docstring)."""
    from agentscaler_dagster.envgen.validation import sample_arguments

    rng = random.Random(f"semantics:{seed}")
    results = []
    for spec in sorted(specs, key=lambda s: s.name):
        if spec.name not in schema.get("bindings", {}):
            continue
        checker = _Checker(env, spec, schema)
        last_error = None
        for sid in sorted(states):
            state = states[sid]
            for attempt in range(tries):
                try:
                    args = sample_arguments(spec, schema, state, rng, include_optional=0.0 if attempt == 0 else 0.5)
                except Exception as exc:  # the sampler cannot read this schema: the tool is unchecked, not the run
                    last_error = f"cannot sample arguments: {type(exc).__name__}: {exc}"
                    break
                before = copy.deepcopy(state)
                outcome = env.call(state, spec.name, args)
                if state_hash(state) != state_hash(before):
                    checker.check("failed_write_unchanged", False, "the caller's state was modified")
                if not outcome.ok:
                    last_error = outcome.error
                    continue
                checker.on_success(args, before, outcome.state, outcome.output)
                if checker.kind not in ("get", "list", "search"):
                    checker.unknown_id(args, state)
                break
        if checker.result.calls == 0:
            checker.check("runs", False, f"no call succeeded on any initial state ({last_error})")
        results.append(checker.result)
    return results
