"""Environment synthesis: schema, dependency graph, tool code, initial states, validation, package bytes.

Real parts only: environments are built from ToolSpecs made here (a small retail domain), from a snapshot,
and from the embedded starter corpus through the real corpus ingest; every call runs in the real sandbox.
"""

from __future__ import annotations

import collections
import hashlib
import json
from pathlib import Path

import networkx as nx
import pytest

from agentscaler_dagster.contracts import Domain, ToolSource, ToolSpec, state_hash
from agentscaler_dagster.envgen import (
    ProgrammaticCodeGenerator, build_environment, build_environment_from_snapshot, state_problems,
    validate_environment,
)
from agentscaler_dagster.sandbox import Environment, Runtime

S, I = {"type": "string"}, {"type": "integer"}
STARTER = Path(__file__).resolve().parents[1] / "agentscaler_dagster" / "starter_corpus"


def _tool(name, op, props, required, returns=None):
    return ToolSpec(tool_id=f"t-{name}", name=name, description=f"{name.replace('_', ' ')}.", operation=op,
                    parameters={"type": "object", "properties": props, "required": required}, returns=returns,
                    source=ToolSource(format="test", file="test_envgen.py", api_title="Retail"))


def retail_tools() -> list[ToolSpec]:
    return [
        _tool("list_products", "read", {"category": S, "limit": I}, []),
        _tool("get_product", "read", {"product_id": S}, ["product_id"]),
        _tool("get_order", "read", {"order_id": S}, ["order_id"]),
        _tool("list_orders", "read", {"customer_id": S, "status": {"type": "string",
                                      "enum": ["pending", "shipped", "cancelled"]}}, []),
        _tool("create_order", "write", {"customer_id": S, "product_id": S, "quantity": I},
              ["customer_id", "product_id", "quantity"]),
        _tool("cancel_order", "write", {"order_id": S, "reason": S}, ["order_id"]),
        _tool("get_customer", "read", {"customer_id": S}, ["customer_id"],
              returns={"type": "object", "properties": {"customer_id": S, "name": S,
                                                        "email": {"type": "string", "format": "email"}}}),
        _tool("update_customer_email", "write", {"customer_id": S, "email": S}, ["customer_id", "email"]),
    ]


DOMAIN = Domain(domain_id="retail", label="retail orders", tool_ids=[t.tool_id for t in retail_tools()])


@pytest.fixture(scope="module")
def runtime():
    rt = Runtime()
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def package(tmp_path_factory, runtime):
    out = tmp_path_factory.mktemp("env") / "retail"
    manifest = build_environment(DOMAIN, retail_tools(), out, seed=11, runtime=runtime)
    return out, manifest


@pytest.fixture(scope="module")
def env(package, runtime):
    e = Environment.load(package[0], runtime=runtime)
    yield e
    e.close()


def test_package_files_and_manifest(package):
    out, manifest = package
    for rel in ("tools.json", "tool_specs.json", "schema.json", "tools_module.py", "dependency_graph.json",
                "dependency_graph.png", "validation.json", "manifest.json"):
        assert (out / rel).is_file(), rel
    assert sorted(p.name for p in (out / "states").iterdir()) == ["state_0.json", "state_1.json", "state_2.json"]
    on_disk = json.loads((out / "manifest.json").read_text())
    for rel, digest in on_disk["files"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest, rel
    assert on_disk["n_tools"] == 8 and on_disk["n_states"] == 3 and on_disk["generator"] == "programmatic"
    assert (out / "dependency_graph.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tools = json.loads((out / "tools.json").read_text())
    assert {t["type"] for t in tools} == {"function"}
    assert {t["function"]["name"] for t in tools} == {t.name for t in retail_tools()}


def test_schema_collections(package):
    schema = json.loads((package[0] / "schema.json").read_text())
    colls = schema["collections"]
    assert sorted(colls) == ["customers", "orders", "products"]
    assert {n: c["id_field"] for n, c in colls.items()} == {
        "customers": "customer_id", "orders": "order_id", "products": "product_id"}
    assert colls["orders"]["references"] == {"customer_id": "customers", "product_id": "products"}
    assert colls["orders"]["status_field"] == "status"
    assert colls["orders"]["status_values"] == ["pending", "shipped", "cancelled"]
    assert colls["customers"]["record"]["properties"]["email"]["format"] == "email"
    assert "quantity" in colls["orders"]["record"]["properties"]
    kinds = {name: b["kind"] for name, b in schema["bindings"].items()}
    assert kinds == {"cancel_order": "transition", "create_order": "create", "get_customer": "get", "get_order": "get",
                     "get_product": "get", "list_orders": "list", "list_products": "list",
                     "update_customer_email": "update"}


def test_dependency_graph(env):
    g = env.dependency_graph
    assert isinstance(g, nx.DiGraph)
    assert g.edges["create_order", "get_order"]["field"] == "order_id"
    assert g.edges["get_customer", "create_order"]["field"] == "customer_id"
    assert g.edges["list_products", "create_order"]["field"] == "product_id"
    assert g.edges["get_order", "cancel_order"]["field"] == "order_id"
    # a cancelled order feeds no further write on orders
    assert not g.has_edge("cancel_order", "create_order")
    assert g.nodes["get_order"]["operation"] == "read" and g.nodes["cancel_order"]["operation"] == "write"
    starts = sorted(n for n in g.nodes if g.nodes[n]["start"])
    assert starts == ["list_orders", "list_products"] == env.dependency_graph_data["starts"]


def test_calls_behave(env):
    state = env.initial_state("state_1")
    customer = sorted(state["customers"])[0]
    product = sorted(state["products"])[0]
    h0 = state_hash(state)
    created = env.call(state, "create_order", {"customer_id": customer, "product_id": product, "quantity": 2})
    assert created.ok, created.error
    order = created.output
    assert order["customer_id"] == customer and order["status"] == "pending" and order["quantity"] == 2
    assert state_hash(state) == h0 and state_hash(created.state) != h0
    got = env.call(created.state, "get_order", {"order_id": order["order_id"]})
    assert got.ok and got.output == order and state_hash(got.state) == state_hash(created.state)
    again = env.call(created.state, "create_order", {"customer_id": customer, "product_id": product, "quantity": 1})
    assert again.output["order_id"] != order["order_id"]  # ids from the counter never collide

    cancelled = env.call(created.state, "cancel_order", {"order_id": order["order_id"]})
    assert cancelled.ok and cancelled.output["status"] == "cancelled"
    twice = env.call(cancelled.state, "cancel_order", {"order_id": order["order_id"]})
    assert not twice.ok and "already cancelled" in twice.error
    assert state_hash(twice.state) == state_hash(cancelled.state)

    unknown = env.call(state, "cancel_order", {"order_id": "o-17"})
    assert not unknown.ok and unknown.error.startswith("Error: order 'o-17' not found; check the order id") and state_hash(unknown.state) == h0
    bad_ref = env.call(state, "create_order", {"customer_id": "nobody", "product_id": product, "quantity": 1})
    assert not bad_ref.ok and "customer 'nobody' not found" in bad_ref.error
    zero = env.call(state, "create_order", {"customer_id": customer, "product_id": product, "quantity": 0})
    assert not zero.ok and "quantity must be positive" in zero.error
    listed = env.call(state, "list_orders", {"customer_id": customer})
    assert listed.ok and all(o["customer_id"] == customer for o in listed.output)
    assert len(env.call(state, "list_products", {"limit": 2}).output) == 2
    email = env.call(state, "update_customer_email", {"customer_id": customer, "email": "new@example.com"})
    assert email.ok and email.state["customers"][customer]["email"] == "new@example.com"


def test_initial_states_valid_and_diverse(env):
    sizes = set()
    for sid, state in env.initial_states.items():
        assert state_problems(env.schema, state) == [], sid
        sizes.add(tuple(len(state[c]) for c in sorted(env.schema["collections"])))
        for order in state["orders"].values():  # referential integrity
            assert order["customer_id"] in state["customers"] and order["product_id"] in state["products"]
    assert len(sizes) == 3
    assert len({state_hash(s) for s in env.initial_states.values()}) == 3


def test_validation_pass_rate(package, runtime):
    out, manifest = package
    assert manifest.pass_rate == 1.0 and manifest.usable
    report = validate_environment(out, runtime=runtime)
    assert report.pass_rate == 1.0 and report.usable and not report.static_problems
    writes = {t.tool: t.state_changed for t in report.tools if t.operation == "write"}
    reads = {t.tool: t.state_changed for t in report.tools if t.operation == "read"}
    assert all(writes.values()) and not any(reads.values())
    on_disk = json.loads((out / "validation.json").read_text())
    assert on_disk["pass_rate"] == 1.0 and len(on_disk["tools"]) == 8


def test_deterministic_bytes(package, tmp_path, runtime):
    out, manifest = package
    again = build_environment(DOMAIN, list(reversed(retail_tools())), tmp_path / "again", seed=11, runtime=runtime)
    assert again.content_hash == manifest.content_hash
    assert (tmp_path / "again" / "manifest.json").read_bytes() == (out / "manifest.json").read_bytes()
    other = build_environment(DOMAIN, retail_tools(), tmp_path / "other", seed=12, runtime=runtime)
    assert other.files["states/state_0.json"] != manifest.files["states/state_0.json"]
    assert other.files["tools_module.py"] == manifest.files["tools_module.py"]


class _HostileGenerator:
    name = "hostile-llm"

    def generate(self, domain, tools, schema):
        return "import os\n" + ProgrammaticCodeGenerator().generate(domain, tools, schema)


class _GoodGenerator:
    name = "careful-llm"

    def generate(self, domain, tools, schema):
        return "# written by a careful model\n" + ProgrammaticCodeGenerator().generate(domain, tools, schema)


def test_code_generator_plugin_and_fallback(tmp_path, runtime):
    bad = build_environment(DOMAIN, retail_tools(), tmp_path / "bad", seed=1, code_generator=_HostileGenerator(),
                            max_attempts=2, runtime=runtime)
    assert bad.generator == "programmatic" and len(bad.generator_attempts) == 2
    assert any("'os'" in p for p in bad.generator_attempts[0]["problems"])
    assert bad.usable
    good = build_environment(DOMAIN, retail_tools(), tmp_path / "good", seed=1, code_generator=_GoodGenerator(),
                             runtime=runtime)
    assert good.generator == "careful-llm" and good.generator_attempts == []
    assert (tmp_path / "good" / "tools_module.py").read_text().startswith("# written by a careful model")


def test_edge_verifier_vetoes(tmp_path, runtime):
    m = build_environment(DOMAIN, retail_tools(), tmp_path / "v", seed=1, n_states=1, runtime=runtime,
                          edge_verifier=lambda a, b: b.operation == "write")
    graph = json.loads((tmp_path / "v" / "dependency_graph.json").read_text())
    assert m.n_edges == len(graph["edges"]) > 0
    targets = {e["target"] for e in graph["edges"]}
    assert targets <= {"create_order", "cancel_order", "update_customer_email"}


def test_bring_your_own_snapshot(tmp_path, runtime):
    snapshot = {
        "customers": [{"customer_id": "c1", "name": "Ada", "email": "ada@example.com"},
                      {"customer_id": "c2", "name": "Bo", "email": "bo@example.com"}],
        "orders": {"o1": {"order_id": "o1", "customer_id": "c1", "product_id": "p1", "quantity": 1,
                          "status": "pending"},
                   "o2": {"order_id": "o2", "customer_id": "c2", "product_id": "p2", "quantity": 3,
                          "status": "shipped"}},
        "products": [{"product_id": "p1", "category": "lamps"}, {"product_id": "p2", "category": "desks"}],
    }
    m = build_environment_from_snapshot(DOMAIN, retail_tools(), snapshot, tmp_path / "byo", n_states=2,
                                        runtime=runtime)
    assert m.schema_source == "snapshot" and m.n_states == 2 and m.pass_rate >= 0.9
    with Environment.load(tmp_path / "byo", runtime=runtime) as env:
        state = env.initial_state("snapshot")
        assert state["customers"]["c1"]["name"] == "Ada"
        assert env.schema["collections"]["orders"]["references"]["customer_id"] == "customers"
        got = env.call(state, "get_order", {"order_id": "o2"})
        assert got.ok and got.output["quantity"] == 3
        made = env.call(state, "create_order", {"customer_id": "c2", "product_id": "p1", "quantity": 1})
        assert made.ok and made.output["order_id"] not in ("o1", "o2")
        for sid, s in env.initial_states.items():
            assert state_problems(env.schema, s) == [], sid


def test_starter_corpus_groups(tmp_path, runtime):
    if not STARTER.is_dir() or not any(STARTER.glob("*.json")):
        pytest.skip(f"starter corpus not present at {STARTER}")
    try:
        from agentscaler_dagster.corpus.ingest import ingest
        from agentscaler_dagster.corpus.store import read_corpus
    except ImportError as exc:
        pytest.skip(f"corpus ingest not available: {exc}")
    ingest([STARTER], tmp_path / "corpus", workers=1)
    groups = collections.defaultdict(list)
    for spec in read_corpus(tmp_path / "corpus"):
        groups[spec.source.api_title].append(spec)
    assert len(groups) >= 4
    # four services of different formats; all sixteen take ~20 s and run in the benchmark script's spirit
    picked = [t for t in sorted(groups) if any(k in t for k in ("Larkspur", "Meridian", "Zipline", "Willowbrook"))]
    assert len(picked) == 4, sorted(groups)
    for title in picked:
        domain = Domain(domain_id=title.split()[0].lower(), label=title, tool_ids=[t.tool_id for t in groups[title]])
        m = build_environment(domain, groups[title], tmp_path / domain.domain_id, seed=5, n_states=2,
                              runtime=runtime)
        report = json.loads((tmp_path / domain.domain_id / "validation.json").read_text())
        failures = [(t["tool"], t["error"]) for t in report["tools"] if not t["ok"]]
        assert m.pass_rate >= 0.9, (title, failures)
        assert m.n_edges > 0 and m.n_collections >= 2


# ------------------------------------------------------------------ dependency edges by embedding similarity

# (required input's field, offered output field, feeds?) — labelled by hand; the matcher's guards and
# thresholds must get every one right with the real MiniLM model
NAME_PAIRS = [
    ("contactid", "contact_id", True),            # run-together id
    ("customerID", "customer_id", True),
    ("application_id", "app_id", True),           # abbreviation, head nouns embed close
    ("source_lang", "source_language", True),
    ("email_address", "email", True),             # filler word
    ("first_name", "name_first", True),           # word order
    ("subscription_id", "subscriptions_get_id", True),  # verb left in a generated name
    ("adclient_id", "accounts_adclient_id", True),      # role prefix
    ("event_id", "event_ids", True),
    ("device_id", "device_tag_id", False),        # a more specific entity
    ("user_id", "user_account_id", False),
    ("collection_id", "collection_listing_id", False),
    ("start_date", "end_date", False),            # contrast words
    ("lat", "start_lat", False),
    ("parent_id", "child_id", False),
    ("departure_airport_code", "arrival_airport_code", False),
    ("customer_id", "customer_name", False),      # an id never takes a value field
    ("visitor_history", "location_history", False),  # different modifiers on both sides
    ("callback_uri", "callback_url", False),      # heads differ in meaning
    ("order_id", "invoice_id", False),
    ("leave_application_id", "app_id", False),   # a role word and a different head word at once
    ("rider_id", "ride_id", False),               # agent nouns
    ("charger_id", "charge_id", False),
    ("vehicle_id", "car_id", True),               # synonyms
    ("agent_id", "assignee_agent_id", True),
]


@pytest.fixture(scope="module")
def field_matcher():
    from agentscaler_dagster.domains.embed import make_embedder
    from agentscaler_dagster.envgen.fieldmatch import FieldMatcher

    return FieldMatcher(make_embedder("minilm"))


def test_field_matcher_labelled_pairs(field_matcher):
    field_matcher.prepare([f for pair in NAME_PAIRS for f in pair[:2]])
    wrong = [(a, b, want) for a, b, want in NAME_PAIRS if (field_matcher.match(a, b) is not None) != want]
    assert not wrong, f"misjudged name pairs: {wrong}"
    exact = field_matcher.match("contactid", "contact_id")
    assert exact.score == 1.0 and exact.head_score == 1.0  # the same words after splitting
    assert 0.8 <= field_matcher.match("application_id", "app_id").score < 1.0


def messaging_tools() -> list[ToolSpec]:
    return [
        _tool("list_contacts", "read", {"limit": I}, []),
        _tool("get_contact", "read", {"contact_id": S}, ["contact_id"]),
        # names the contact its own way: no tool returns a field called "contactid"
        _tool("send_message", "write", {"contactid": S, "body": S}, ["contactid", "body"]),
        _tool("list_device_tags", "read", {}, [], returns={"type": "array", "items": {
            "type": "object", "properties": {"device_tag_id": S, "label": S}}}),
        _tool("reboot_device", "write", {"device_id": S}, ["device_id"]),
    ]


def test_embedding_edges_feed_tasks(tmp_path, runtime, field_matcher):
    from agentscaler_dagster.envgen.depgraph import build_dependency_graph
    from agentscaler_dagster.envgen.schema import derive_schema
    from agentscaler_dagster.tasks import sample_tasks

    tools = messaging_tools()
    schema = derive_schema("messaging", tools)
    by_name = build_dependency_graph(tools, schema)
    assert not by_name.has_edge("list_contacts", "send_message")
    graph = build_dependency_graph(tools, schema, field_matcher=field_matcher)
    assert set(by_name.edges) < set(graph.edges)
    edge = graph.edges["list_contacts", "send_message"]
    assert edge["match"] == "embedding" and edge["sources"] == {"contactid": "contact_id"}
    assert edge["similarity"] == 1.0
    assert graph.edges["list_contacts", "get_contact"]["match"] == "name"
    assert not graph.has_edge("list_device_tags", "reboot_device")  # device_tag_id is not a device_id

    domain = Domain(domain_id="messaging", label="messaging", tool_ids=[t.tool_id for t in tools])
    manifest = build_environment(domain, tools, tmp_path / "messaging", seed=3, runtime=runtime,
                                 field_matcher=field_matcher)
    assert manifest.n_embedding_edges >= 1 and manifest.edge_matcher == field_matcher.matcher_id
    with Environment.load(tmp_path / "messaging", runtime=runtime) as env:
        contacts = set(env.initial_states[sorted(env.initial_states)[0]]["contacts"])
        linked = []
        for task in sample_tasks(env, n_tasks=30, seed=5, min_walk_length=2, max_walk_length=2):
            names = [a.name for a in task.gold_actions]
            if names == ["list_contacts", "send_message"]:
                linked.append(task)
        assert linked, "no walk took the embedding edge list_contacts -> send_message"
        for task in linked:
            # the value came from the listed contacts, not from a made-up string
            assert task.gold_actions[1].arguments["contactid"] in contacts | {
                k for s in env.initial_states.values() for k in s["contacts"]}
