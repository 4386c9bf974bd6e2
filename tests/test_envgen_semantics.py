"""Tool kinds, their semantics in the generated code, semantic validation, policy, contracts and the CLI.

Real parts only: a shop domain built with envgen from ToolSpecs made here, every call run in the real sandbox
runtime; the broken tool modules are the generated module with one function rewritten by hand, validated by
the same ``validate_parts`` the pipeline uses; the CLI runs as `agentscaler environments` in process.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import pytest

from agentscaler_dagster.contracts import (
    DependencyEdge,
    Domain,
    EnvironmentManifest,
    Policy,
    ToolSource,
    ToolSpec,
    state_hash,
)
from agentscaler_dagster.envgen import build_environment, state_problems
from agentscaler_dagster.envgen.validation import validate_parts
from agentscaler_dagster.sandbox import Environment, Runtime, check_module
from agentscaler_dagster.tasks import domain_instructions, policy_of

S, I, N = {"type": "string"}, {"type": "integer"}, {"type": "number"}
ORDER_STATUS = {"type": "string", "enum": ["pending", "shipped", "delivered", "cancelled"]}


def _tool(name, op, props, required, returns=None):
    return ToolSpec(tool_id=f"s-{name}", name=name, description=f"{name.replace('_', ' ')}.", operation=op,
                    parameters={"type": "object", "properties": props, "required": required}, returns=returns,
                    source=ToolSource(format="test", file="test_envgen_semantics.py", api_title="Shop"))


def shop_tools() -> list[ToolSpec]:
    customer = {"type": "object", "properties": {"customer_id": S, "first_name": S, "last_name": S,
                                                 "email": {"type": "string", "format": "email"}, "phone": S}}
    order = {"type": "object", "properties": {"order_id": S, "customer_id": S, "order_status": ORDER_STATUS,
                                              "quantity": I}}
    return [
        _tool("get_customer", "read", {"customer_id": S}, ["customer_id"], returns=customer),
        _tool("lookup_customer", "read", {"email": S}, ["email"]),
        _tool("list_customer_orders", "read", {"customer_id": S, "order_status": ORDER_STATUS}, ["customer_id"]),
        _tool("get_order", "read", {"order_id": S}, ["order_id"], returns=order),
        _tool("list_products", "read", {"category": S, "min_price": N, "max_price": N, "limit": I}, []),
        _tool("create_order", "write", {"customer_id": S, "product_id": S, "quantity": I},
              ["customer_id", "product_id", "quantity"]),
        _tool("update_customer_email", "write", {"customer_id": S, "email": S}, ["customer_id", "email"]),
        _tool("delete_review", "write", {"review_id": S}, ["review_id"],
              returns={"type": "object", "properties": {"review_id": S, "comment": S, "customer_id": S}}),
        _tool("add_products_to_wishlist", "write", {"wishlist_id": S, "product_ids": {"type": "array", "items": S}},
              ["wishlist_id", "product_ids"]),
        _tool("remove_products_from_wishlist", "write",
              {"wishlist_id": S, "product_ids": {"type": "array", "items": S}}, ["wishlist_id", "product_ids"]),
        _tool("cancel_order", "write", {"order_id": S, "reason": S}, ["order_id"]),
        _tool("purchase_product", "write", {"product_id": S, "payment_method_id": S, "quantity": I},
              ["product_id", "payment_method_id", "quantity"]),
        _tool("flag_order", "write", {"order_id": S}, ["order_id"]),
        _tool("get_promotion", "read", {"promotion_id": S}, ["promotion_id"],
              returns={"type": "object", "properties": {"promotion_id": S, "start_date": {"type": "string", "format": "date"},
                                                        "end_date": {"type": "string", "format": "date"},
                                                        "discount_percent": I}}),
        _tool("get_payment_method", "read", {"payment_method_id": S}, ["payment_method_id"],
              returns={"type": "object", "properties": {"payment_method_id": S, "last4": S, "holder_name": S}}),
        _tool("get_wishlist", "read", {"wishlist_id": S}, ["wishlist_id"],
              returns={"type": "object", "properties": {"wishlist_id": S, "customer_id": S, "wishlist_name": S}}),
    ]


DOMAIN = Domain(domain_id="shop", label="shop orders", tool_ids=[t.tool_id for t in shop_tools()])
KINDS = {
    "get_customer": "get", "lookup_customer": "search", "list_customer_orders": "list", "get_order": "get",
    "list_products": "list", "create_order": "create", "update_customer_email": "update", "delete_review": "delete",
    "add_products_to_wishlist": "sub_add", "remove_products_from_wishlist": "sub_remove",
    "cancel_order": "transition", "purchase_product": "action", "flag_order": "other", "get_wishlist": "get",
    "get_promotion": "get", "get_payment_method": "get",
}


@pytest.fixture(scope="module")
def runtime():
    rt = Runtime()
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def package(tmp_path_factory, runtime):
    out = tmp_path_factory.mktemp("shop") / "shop"
    manifest = build_environment(DOMAIN, shop_tools(), out, seed=5, runtime=runtime)
    return out, manifest


@pytest.fixture(scope="module")
def env(package, runtime):
    e = Environment.load(package[0], runtime=runtime)
    yield e
    e.close()


def test_every_tool_has_its_kind_and_the_domain_is_valid(package):
    out, manifest = package
    assert manifest.tool_kinds == KINDS
    assert manifest.semantic_valid and manifest.usable, manifest.failed_properties
    assert EnvironmentManifest.model_validate_json((out / "manifest.json").read_text()).tool_kinds == KINDS
    report = json.loads((out / "validation.json").read_text())
    checked = {t["tool"]: set(t["checked"]) for t in report["semantics"]}
    assert {"returns_requested", "read_only"} <= checked["get_customer"]
    assert {"filters_match", "rows_exist", "complete"} <= checked["list_customer_orders"]
    assert {"adds_one", "returns_created", "stores_given", "unknown_id_rejected"} <= checked["create_order"]
    assert {"changes_only_given", "stores_given"} <= checked["update_customer_email"]
    assert "removes_exactly_one" in checked["delete_review"]
    assert {"touches_only_list", "items_added"} <= checked["add_products_to_wishlist"]
    assert {"touches_only_list", "items_removed"} <= checked["remove_products_from_wishlist"]
    assert {"follows_edges", "second_call_fails", "touches_only_status"} <= checked["cancel_order"]
    assert {"adds_one", "availability_taken", "funds_taken"} <= checked["purchase_product"]
    assert "touches_only_target" in checked["flag_order"]


def test_schema_status_field_and_transitions(env):
    orders = env.schema["collections"]["orders"]
    # the declared order_status is the status field, not a made-up `status` next to it
    assert orders["status_field"] == "order_status" and "status" not in orders["record"]["properties"]
    assert orders["transitions"] == {"cancelled": ["pending", "shipped"]}


def test_list_filters_really_filter(env):
    state = env.initial_state("state_2")
    customer = next(o["customer_id"] for o in state["orders"].values())
    listed = env.call(state, "list_customer_orders", {"customer_id": customer})
    assert listed.ok and listed.output
    assert [o["order_id"] for o in listed.output] == sorted(
        (o["order_id"] for o in state["orders"].values() if o["customer_id"] == customer),
        key=lambda k: int(k.rsplit("-", 1)[1]))
    prices = [p["price"] for p in state["products"].values()]
    low, high = sorted(prices)[1], sorted(prices)[-2]
    within = env.call(state, "list_products", {"min_price": low, "max_price": high})
    assert within.ok and len(within.output) == sum(1 for p in prices if low <= p <= high)


def test_sub_collection_ops_touch_only_the_list(env):
    state = env.initial_state("state_1")
    wishlist_id, wishlist = next((k, w) for k, w in sorted(state["wishlists"].items()) if len(w["product_ids"]) >= 2)
    keep, drop = wishlist["product_ids"][0], wishlist["product_ids"][1]
    removed = env.call(state, "remove_products_from_wishlist", {"wishlist_id": wishlist_id, "product_ids": [drop]})
    assert removed.ok, removed.error
    after = removed.state["wishlists"][wishlist_id]
    assert drop not in after["product_ids"] and keep in after["product_ids"]
    assert {k: v for k, v in after.items() if k != "product_ids"} == \
        {k: v for k, v in wishlist.items() if k != "product_ids"}
    assert removed.state["products"] == state["products"]  # the products themselves stay
    again = env.call(removed.state, "remove_products_from_wishlist", {"wishlist_id": wishlist_id, "product_ids": [drop]})
    assert not again.ok and "is not in the product_ids" in again.error
    ghost = env.call(state, "add_products_to_wishlist", {"wishlist_id": wishlist_id, "product_ids": ["product-999"]})
    assert not ghost.ok and "product 'product-999' not found" in ghost.error


def test_transition_follows_edges_and_second_cancel_is_an_error(env):
    state = env.initial_state("state_2")
    pending = next(k for k, o in sorted(state["orders"].items()) if o["order_status"] in ("pending", "shipped"))
    done = env.call(state, "cancel_order", {"order_id": pending, "reason": "no longer needed"})
    assert done.ok and done.output["order_status"] == "cancelled" and done.output["reason"] == "no longer needed"
    twice = env.call(done.state, "cancel_order", {"order_id": pending})
    assert not twice.ok and "already cancelled" in twice.error and state_hash(twice.state) == state_hash(done.state)
    state["orders"][pending]["order_status"] = "delivered"
    late = env.call(state, "cancel_order", {"order_id": pending})
    assert not late.ok and "can become cancelled only from pending or shipped" in late.error


def test_computed_action_checks_stock_funds_and_computes_the_amount(env):
    state = env.initial_state("state_0")
    product_id, product = next((k, p) for k, p in sorted(state["products"].items()) if p["available_quantity"] >= 2)
    card_id = min(state["payment_methods"])
    state["payment_methods"][card_id]["balance"] = 100000.0
    bought = env.call(state, "purchase_product", {"product_id": product_id, "payment_method_id": card_id, "quantity": 2})
    assert bought.ok, bought.error
    assert bought.output["amount"] == round(product["price"] * 2, 2)
    assert bought.state["products"][product_id]["available_quantity"] == product["available_quantity"] - 2
    assert bought.state["payment_methods"][card_id]["balance"] == round(100000.0 - product["price"] * 2, 2)
    too_many = env.call(state, "purchase_product", {"product_id": product_id, "payment_method_id": card_id,
                                                    "quantity": product["available_quantity"] + 1})
    assert not too_many.ok and "available" in too_many.error
    state["payment_methods"][card_id]["balance"] = 0.5
    broke = env.call(state, "purchase_product", {"product_id": product_id, "payment_method_id": card_id, "quantity": 1})
    assert not broke.ok and "insufficient funds" in broke.error and state_hash(broke.state) == state_hash(state)
    missing = env.call(state, "purchase_product", {"product_id": "product-404", "payment_method_id": card_id,
                                                   "quantity": 1})
    assert not missing.ok and "product 'product-404' not found; check the product id" in missing.error


def test_initial_states_are_coherent(env):
    for sid, state in env.initial_states.items():
        assert state_problems(env.schema, state) == [], sid
        for c in state["customers"].values():
            assert re.fullmatch(r"[a-z]+\.[a-z]+@[\w.-]+", c["email"]), c["email"]
            assert c["email"].split("@")[0] == re.sub(r"[^a-z]", "", c["first_name"].lower()) + "." + \
                re.sub(r"[^a-z]", "", c["last_name"].lower())
            assert re.fullmatch(r"\+1-\d{3}-555-\d{4}", c["phone"]), c["phone"]
        for o in state["orders"].values():
            assert o["order_status"] in ORDER_STATUS["enum"] and 1 <= o["quantity"] <= 5
            assert o["customer_id"] in state["customers"]
        for w in state["wishlists"].values():
            assert all(p in state["products"] for p in w["product_ids"])
        for card in state["payment_methods"].values():
            assert card["balance"] >= 1500 and re.fullmatch(r"\d{4}", card["last4"])
            assert len(card["holder_name"].split()) >= 2
        for promo in state["promotions"].values():
            span = dt.date.fromisoformat(promo["end_date"]) - dt.date.fromisoformat(promo["start_date"])
            assert 1 <= span.days <= 14 and 0 <= promo["discount_percent"] <= 50
    sizes = {sum(len(state[c]) for c in env.schema["collections"]) for state in env.initial_states.values()}
    assert len(sizes) == 3


def test_policy_document_is_built_stored_and_shown(env, package):
    out, manifest = package
    policy = Policy.model_validate_json((out / "policy.json").read_text())
    assert manifest.policy_file == "policy.md" and (out / "policy.md").read_text() == policy.text
    rules = {r.rule_id: r for r in policy.rules}
    assert rules["transition-cancel_order"].enforced_by == ["cancel_order"]
    assert "'pending' or 'shipped'" in rules["transition-cancel_order"].text
    assert set(rules["confirm-writes"].tools) == {n for n, k in KINDS.items() if k not in ("get", "list", "search")}
    assert rules["availability-purchase_product"].enforced_by == ["purchase_product"]
    assert "funds-purchase_product" in rules and "verify-identity" in rules
    assert policy_of(env).text == policy.text
    assert domain_instructions(env) == policy.text.strip()


def test_dependency_edges_follow_the_contract(env):
    for a, b, data in env.dependency_graph.edges(data=True):
        edge = DependencyEdge(source=a, target=b, **data)
        assert edge.field and edge.link_fields()


# ---- each property check catches a deliberately broken tool ------------------------------------------------

def _replace_function(source: str, name: str, body: str) -> str:
    start = source.index(f"\ndef {name}(state, **arguments):")
    end = source.find("\n\n\ndef ", start + 1)
    end = len(source) if end < 0 else end
    lines = "\n".join("    " + line for line in body.strip("\n").splitlines())
    return source[:start] + f"\ndef {name}(state, **arguments):\n{lines}\n" + source[end:]


BROKEN = [
    ("get_customer", "returns_requested", """
others = [r for r in _rows(state, 'customers') if r['customer_id'] != arguments['customer_id']]
return others[0]"""),
    ("get_customer", "read_only", """
record = _lookup(state, 'customers', 'customer', arguments['customer_id'])
record['views'] = (record.get('views') or 0) + 1
return record"""),
    ("list_customer_orders", "filters_match", "return _rows(state, 'orders')"),
    ("list_customer_orders", "complete", """
rows = [r for r in _rows(state, 'orders') if r.get('customer_id') == arguments['customer_id']]
return rows[1:]"""),
    ("lookup_customer", "filters_match", """
rows = [r for r in _rows(state, 'customers') if r.get('email') != arguments['email']]
return rows[0]"""),
    ("create_order", "adds_one", """
for n in (1, 2):
    key = _new_id(state, 'orders', 'order', False)
    _table(state, 'orders')[key] = {'order_id': key, 'order_status': 'pending', **_given(arguments, [('customer_id', 'customer_id'), ('product_id', 'product_id'), ('quantity', 'quantity')])}
return _table(state, 'orders')[key]"""),
    ("create_order", "stores_given", """
key = _new_id(state, 'orders', 'order', False)
record = {'order_id': key, 'order_status': 'pending', 'customer_id': arguments['customer_id'], 'product_id': arguments['product_id'], 'quantity': 99}
_table(state, 'orders')[key] = record
return record"""),
    ("create_order", "unknown_id_rejected", """
key = _new_id(state, 'orders', 'order', False)
record = {'order_id': key, 'order_status': 'pending', **_given(arguments, [('customer_id', 'customer_id'), ('product_id', 'product_id'), ('quantity', 'quantity')])}
_table(state, 'orders')[key] = record
return record"""),
    ("update_customer_email", "changes_only_given", """
record = _lookup(state, 'customers', 'customer', arguments['customer_id'])
record['email'] = arguments['email']
record['first_name'] = 'Changed'
return record"""),
    ("update_customer_email", "stores_given", """
record = _lookup(state, 'customers', 'customer', arguments['customer_id'])
record['email'] = arguments['email'].upper() + 'x'
return record"""),
    ("delete_review", "removes_exactly_one", """
_lookup(state, 'reviews', 'review', arguments['review_id'])
state['reviews'] = {}
return {'deleted': True}"""),
    ("remove_products_from_wishlist", "touches_only_list", """
record = _lookup(state, 'wishlists', 'wishlist', arguments['wishlist_id'])
record['product_ids'] = [p for p in record.get('product_ids') or [] if p not in arguments['product_ids']]
record['wishlist_name'] = 'edited'
return record"""),
    ("remove_products_from_wishlist", "items_removed", """
record = _lookup(state, 'wishlists', 'wishlist', arguments['wishlist_id'])
record['product_ids'] = []
return record"""),
    ("add_products_to_wishlist", "items_added", """
record = _lookup(state, 'wishlists', 'wishlist', arguments['wishlist_id'])
record['product_ids'] = list(arguments['product_ids'])
return record"""),
    ("cancel_order", "second_call_fails", """
record = _lookup(state, 'orders', 'order', arguments['order_id'])
record['order_status'] = 'cancelled'
return record"""),
    ("cancel_order", "follows_edges", """
record = _lookup(state, 'orders', 'order', arguments['order_id'])
if record.get('status') == 'cancelled':
    raise ToolError('already cancelled')
record['status'] = 'cancelled'
return record"""),
    ("purchase_product", "availability_taken", """
product = _lookup(state, 'products', 'product', arguments['product_id'])
card = _lookup(state, 'payment_methods', 'payment method', arguments['payment_method_id'])
amount = _money(product['price'] * arguments['quantity'])
card['balance'] = _money(card['balance'] - amount)
key = _new_id(state, 'product_purchases', 'product-purchase', False)
record = {'product_purchase_id': key, 'status': 'confirmed', 'amount': amount, **_given(arguments, [('payment_method_id', 'payment_method_id'), ('product_id', 'product_id'), ('quantity', 'quantity')])}
_table(state, 'product_purchases')[key] = record
return record"""),
    ("purchase_product", "funds_taken", """
product = _lookup(state, 'products', 'product', arguments['product_id'])
_lookup(state, 'payment_methods', 'payment method', arguments['payment_method_id'])
product['available_quantity'] = product['available_quantity'] - arguments['quantity']
key = _new_id(state, 'product_purchases', 'product-purchase', False)
record = {'product_purchase_id': key, 'status': 'confirmed', 'amount': _money(product['price'] * arguments['quantity']), **_given(arguments, [('payment_method_id', 'payment_method_id'), ('product_id', 'product_id'), ('quantity', 'quantity')])}
_table(state, 'product_purchases')[key] = record
return record"""),
    ("flag_order", "touches_only_target", """
record = _lookup(state, 'orders', 'order', arguments['order_id'])
for other in _rows(state, 'orders'):
    other['last_action'] = 'flag_order'
return record"""),
    ("flag_order", "writes", "return _lookup(state, 'orders', 'order', arguments['order_id'])"),
    ("get_order", "runs", "raise ToolError('out of service')"),
]


@pytest.mark.parametrize("tool,prop,body", BROKEN, ids=[f"{t}-{p}" for t, p, _ in BROKEN])
def test_each_property_check_catches_a_broken_tool(package, runtime, tool, prop, body):
    out, _ = package
    specs = [s for s in shop_tools() if s.name == tool]
    schema = json.loads((out / "schema.json").read_text())
    states = {p.stem: json.loads(p.read_text()) for p in sorted((out / "states").glob("*.json"))}
    source = _replace_function((out / "tools_module.py").read_text(), tool, body)
    assert check_module(source) == []
    report = validate_parts("shop", specs, source, schema, states, runtime=runtime)
    failed = {t.tool: t.failed for t in report.semantics}
    assert any(f.startswith(prop + ":") for f in failed[tool]), failed[tool]
    assert not report.semantic_valid and not report.usable
    # the unbroken module passes the same check, so the failure is the breakage's
    good = validate_parts("shop", specs, (out / "tools_module.py").read_text(), schema, states, runtime=runtime)
    assert good.semantic_valid, {t.tool: t.failed for t in good.semantics}


# ---- the CLI ----------------------------------------------------------------------------------------------

def write_inputs(root: Path) -> tuple[Path, Path]:
    """The shop domain as the corpus and domains stages write them (the real corpus writer)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from agentscaler_dagster.corpus.store import write_corpus

    corpus, domains = root / "corpus", root / "domains"
    domains.mkdir(parents=True)
    tools = shop_tools()
    write_corpus(tools, corpus)
    pq.write_table(pa.table({"tool_id": [t.tool_id for t in tools], "domain_id": ["shop"] * len(tools),
                             "label": ["shop orders"] * len(tools)}), domains / "domains.parquet")
    return corpus, domains


def test_cli_writes_packages_and_report(tmp_path):
    from agentscaler_dagster.cli import main

    corpus, domains = write_inputs(tmp_path)
    args = ["environments", "--corpus", str(corpus), "--domains", str(domains), "--seed", "3"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    report = json.loads((tmp_path / "a" / "environments_report.json").read_text())
    (row,) = report["domains"]
    assert row["tool_kinds"] == KINDS and row["semantic_valid"] and row["failed_properties"] == {}
    assert report["totals"]["typed_share"] == round(1 - 1 / len(KINDS), 4) and report["totals"]["valid_share"] == 1.0
    assert (tmp_path / "a" / "shop" / "policy.md").is_file()
    # same inputs and seed: the same bytes
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    for rel in ("environments_report.json", "shop/manifest.json", "shop/tools_module.py", "shop/states/state_1.json"):
        digest = [hashlib.sha256((tmp_path / d / rel).read_bytes()).hexdigest() for d in ("a", "b")]
        assert digest[0] == digest[1], rel
    # could not run: exit 2 with one line naming the input
    assert main(["environments", "--corpus", str(tmp_path / "nowhere"), "--domains", str(domains),
                 "--out", str(tmp_path / "c")]) == 2


def test_policy_tasks_ask_for_what_the_policy_forbids(env):
    from agentscaler_dagster.tasks import policy_tasks

    tasks = policy_tasks(env, n_tasks=6, seed=1)
    assert len(tasks) == 6 and tasks == policy_tasks(env, n_tasks=6, seed=1)
    transitions = [t for t in tasks if t.policy_rule == "transition-cancel_order"]
    assert transitions and all(t.policy_rule in ("transition-cancel_order", "scope") for t in tasks)
    reads = {spec.name for spec in env.tool_specs if spec.operation == "read"}
    for task in tasks:
        assert task.read_only and task.gold_state_hash == task.initial_state_hash
        assert all(a.name in reads for a in task.gold_actions)
    for task in transitions:
        # the user names the order as a person would; the lookups that find it come first, no write
        attempt = next(s.attempt for s in task.gold_steps if s.attempt is not None)
        state = env.initial_states[task.initial_state_id]
        order_id = attempt.arguments["order_id"]
        assert state["orders"][order_id]["order_status"] in ("delivered", "cancelled")
        assert "cancel" in task.user_intent
        assert order_id not in task.user_intent or any(f.said == order_id for f in task.scenario.facts)
        refused = env.call(state, "cancel_order", {"order_id": order_id})
        assert not refused.ok and state_hash(refused.state) == task.gold_state_hash
