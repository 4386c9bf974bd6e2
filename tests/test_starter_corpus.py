"""The embedded starter corpus: well-formed, rich enough for the later stages, and in sync with its source.

What is real: the shipped data files, read with stdlib json and PyYAML by a small reader written here
(independent of the generator and of the corpus loader); the generator, run into a temporary folder; the
project's corpus loader (``agentscaler_dagster.corpus.ingest``) run on the package folder. Nothing is faked.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
from pathlib import Path

import pytest
import yaml

from agentscaler_dagster.starter_corpus import STARTER_CORPUS_DIR, starter_corpus_files

REPO = Path(__file__).resolve().parents[1]
READ_VERBS = {"get", "list", "search", "find"}
HTTP_METHODS = {"get", "put", "post", "patch", "delete"}
TYPES = {"string", "integer", "number", "boolean", "array", "object"}


# ---------------------------------------------------------------- a reader written for this test


def _deref(doc: dict, node, depth: int = 0):
    """Inline local ``$ref``s (``#/components/...``) so that checks see plain JSON Schema."""
    assert depth < 20, "reference cycle or nesting too deep"
    if isinstance(node, list):
        return [_deref(doc, x, depth + 1) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"non-local $ref {ref}"
        target = doc
        for part in ref[2:].split("/"):
            assert part in target, f"$ref {ref} does not resolve"
            target = target[part]
        return _deref(doc, target, depth + 1)
    return {k: _deref(doc, v, depth + 1) for k, v in node.items()}


def _service(path: Path) -> str:
    return path.name.split(".")[0]


def _format(path: Path) -> str:
    return ".".join(path.name.split(".")[1:])  # openapi.yaml, openapi.json, openai.json, mcp.json


def _load(path: Path):
    text = path.read_text(encoding="utf-8")
    return yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)


def _openapi_tools(doc: dict) -> list[dict]:
    out = []
    for route, item in doc["paths"].items():
        for method, op in item.items():
            if method not in HTTP_METHODS:
                continue
            props: dict = {}
            required: list[str] = []
            for p in op.get("parameters", []):
                p = _deref(doc, p)
                props[p["name"]] = {**_deref(doc, p["schema"]), "description": p.get("description")}
                if p.get("required"):
                    required.append(p["name"])
            body = op.get("requestBody")
            if body:
                schema = _deref(doc, body["content"]["application/json"]["schema"])
                props.update(schema.get("properties", {}))
                required.extend(schema.get("required", []))
            ok = [c for c in op["responses"] if str(c).startswith("2")]
            returns = None
            if ok:
                content = op["responses"][ok[0]].get("content", {})
                if "application/json" in content:
                    returns = _deref(doc, content["application/json"]["schema"])
            out.append({
                "name": op.get("operationId"),
                "description": op.get("description"),
                "parameters": {"type": "object", "properties": props, "required": required},
                "returns": returns,
                "operation": "read" if method == "get" else "write",
                "http": (method.upper(), route),
            })
    return out


def _openai_tools(doc: list) -> list[dict]:
    out = []
    for item in doc:
        assert item["type"] == "function"
        fn = item["function"]
        out.append({
            "name": fn["name"],
            "description": fn.get("description"),
            "parameters": fn.get("parameters"),
            "returns": fn.get("returns"),
            "operation": "read" if fn["name"].split("_")[0] in READ_VERBS else "write",
        })
    return out


def _mcp_tools(doc: dict) -> list[dict]:
    return [{
        "name": t["name"],
        "description": t.get("description"),
        "parameters": t.get("inputSchema"),
        "returns": t.get("outputSchema"),
        "operation": "read" if t.get("annotations", {}).get("readOnlyHint") else "write",
    } for t in doc["tools"]]


def _tools_of(path: Path) -> list[dict]:
    doc = _load(path)
    fmt = _format(path)
    if fmt.startswith("openapi"):
        return _openapi_tools(doc)
    if fmt == "openai.json":
        return _openai_tools(doc)
    if fmt == "mcp.json":
        return _mcp_tools(doc)
    raise AssertionError(f"{path.name}: unknown corpus format {fmt}")


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[dict]]:
    return {_service(p): _tools_of(p) for p in starter_corpus_files()}


def _field_names(schema, out: set | None = None, depth: int = 0) -> set:
    """Every property name anywhere in a schema (objects, arrays of objects, nested)."""
    out = set() if out is None else out
    if isinstance(schema, dict) and depth < 10:
        for k, v in schema.get("properties", {}).items():
            out.add(k)
            _field_names(v, out, depth + 1)
        _field_names(schema.get("items"), out, depth + 1)
    return out


def _check_schema(schema: dict, where: str, problems: list[str], depth: int = 0) -> None:
    """Every node typed; enum/default consistent with the type and bounds; nested properties typed."""
    if depth > 10:
        return
    t = schema.get("type")
    if t not in TYPES:
        problems.append(f"{where}: no JSON type ({t!r})")
        return
    py = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict}[t]
    for v in schema.get("enum", []):
        if not isinstance(v, py):
            problems.append(f"{where}: enum value {v!r} is not {t}")
    if "default" in schema:
        d = schema["default"]
        if not isinstance(d, py) or (t in ("integer", "number") and isinstance(d, bool)):
            problems.append(f"{where}: default {d!r} is not {t}")
        elif "enum" in schema and d not in schema["enum"]:
            problems.append(f"{where}: default {d!r} not in enum")
        elif t in ("integer", "number") and not (schema.get("minimum", d) <= d <= schema.get("maximum", d)):
            problems.append(f"{where}: default {d!r} outside its bounds")
    if t == "object":
        props = schema.get("properties", {})
        missing = set(schema.get("required", [])) - set(props)
        if missing:
            problems.append(f"{where}: required {sorted(missing)} not among properties")
        for k, v in props.items():
            _check_schema(v, f"{where}.{k}", problems, depth + 1)
    if t == "array":
        if not isinstance(schema.get("items"), dict):
            problems.append(f"{where}: array without items")
        else:
            _check_schema(schema["items"], f"{where}[]", problems, depth + 1)


# ---------------------------------------------------------------- shape and size


def test_files_services_formats_and_size():
    files = starter_corpus_files()
    assert files == sorted(files)
    assert all(p.parent == STARTER_CORPUS_DIR for p in files)
    services = [_service(p) for p in files]
    assert len(set(services)) == len(services), "one file per service"
    assert len(services) >= 12, services
    assert {_format(p) for p in files} == {"openapi.yaml", "openapi.json", "openai.json", "mcp.json"}
    total = sum(p.stat().st_size for p in files)
    assert total < 1_000_000, f"package data is {total} bytes"


def test_tool_counts(corpus):
    counts = {svc: len(tools) for svc, tools in corpus.items()}
    assert sum(counts.values()) >= 160, counts
    assert all(12 <= n <= 16 for n in counts.values()), counts


def test_openapi_documents_are_complete():
    for path in starter_corpus_files():
        if not _format(path).startswith("openapi"):
            continue
        doc = _load(path)
        assert doc["openapi"].startswith("3.0"), path.name
        info = doc["info"]
        assert info["title"] and info["x-providerName"], path.name
        assert isinstance(info["x-apisguru-categories"], list) and info["x-apisguru-categories"], path.name
        assert doc["components"]["schemas"], path.name
        text = path.read_text(encoding="utf-8")
        assert "#/components/schemas/" in text, f"{path.name}: no $ref into components/schemas"
        # every $ref in the document resolves
        for ref in set(re.findall(r"#/components/[A-Za-z]+/[A-Za-z0-9_]+", text)):
            _deref(doc, {"$ref": ref})
        ops = [op for item in doc["paths"].values() for m, op in item.items() if m in HTTP_METHODS]
        assert all(op.get("operationId") for op in ops), path.name
        assert any("requestBody" in op for op in ops), f"{path.name}: no requestBody"
        for route, item in doc["paths"].items():
            for m, op in item.items():
                declared = {p["name"] for p in (_deref(doc, x) for x in op.get("parameters", [])) if p["in"] == "path"}
                assert declared == set(re.findall(r"{(\w+)}", route)), f"{path.name} {m} {route}: path params"


def test_non_openapi_files_carry_source_metadata():
    for path in starter_corpus_files():
        doc = _load(path)
        if _format(path) == "openai.json":
            assert isinstance(doc, list)
            assert all(item.get("api_title") and item.get("categories") for item in doc), path.name
        elif _format(path) == "mcp.json":
            assert doc["serverInfo"]["name"], path.name
            assert all("inputSchema" in t and "outputSchema" in t for t in doc["tools"]), path.name


# ---------------------------------------------------------------- every tool


def test_every_tool_is_documented_and_typed(corpus):
    problems: list[str] = []
    for svc, tools in corpus.items():
        names = [t["name"] for t in tools]
        dupes = sorted(n for n in set(names) if names.count(n) > 1)
        if dupes:
            problems.append(f"{svc}: duplicate tool names {dupes}")
        for t in tools:
            where = f"{svc}.{t['name']}"
            if not re.fullmatch(r"[a-z][a-z0-9_]{2,63}", t["name"] or ""):
                problems.append(f"{where}: bad name")
            if len(re.findall(r"\w+", t["description"] or "")) < 4 or not t["description"].endswith("."):
                problems.append(f"{where}: description is not a sentence")
            params = t["parameters"]
            if not isinstance(params, dict) or params.get("type") != "object":
                problems.append(f"{where}: parameters is not an object schema")
                continue
            for pname, pschema in params.get("properties", {}).items():
                if not pschema.get("description"):
                    problems.append(f"{where}({pname}): no description")
            _check_schema(params, f"{where}(params)", problems)
            ret = t["returns"]
            if not isinstance(ret, dict) or ret.get("type") != "object" or not ret.get("properties"):
                problems.append(f"{where}: return schema is not an object with properties")
                continue
            _check_schema(ret, f"{where}(returns)", problems)
    assert not problems, "\n".join(problems[:40])


def test_tool_names_unique_across_the_corpus(corpus):
    # The loader then never has to rename, so trajectories and SFT data show the names written here.
    names = [t["name"] for tools in corpus.values() for t in tools]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})


def test_read_write_balance(corpus):
    all_tools = [t for tools in corpus.values() for t in tools]
    reads = sum(t["operation"] == "read" for t in all_tools)
    assert 0.4 <= reads / len(all_tools) <= 0.6, f"{reads} reads of {len(all_tools)}"
    for svc, tools in corpus.items():
        r = sum(t["operation"] == "read" for t in tools)
        assert r >= 4 and len(tools) - r >= 4, f"{svc}: {r} reads, {len(tools) - r} writes"
        for t in tools:  # read tools are named as reads, write tools are not
            verb = t["name"].split("_")[0]
            assert (verb in READ_VERBS) == (t["operation"] == "read"), f"{svc}.{t['name']} is {t['operation']}"


# ---------------------------------------------------------------- what later stages rely on


def test_ids_are_consistent_and_linked(corpus):
    """Each service is a database world: ``<entity>_id`` fields with one type, produced by reads, used by writes."""
    for svc, tools in corpus.items():
        id_types: dict[str, set] = {}
        for t in tools:
            for schema in (t["parameters"], t["returns"]):
                stack = [schema]
                while stack:
                    node = stack.pop()
                    for k, v in node.get("properties", {}).items():
                        if k.endswith("_id"):
                            id_types.setdefault(k, set()).add(v.get("type"))
                        stack.append(v)
                    if isinstance(node.get("items"), dict):
                        stack.append(node["items"])
        assert all(ts == {"string"} for ts in id_types.values()), f"{svc}: id types {id_types}"
        assert len(id_types) >= 4, f"{svc}: only ids {sorted(id_types)}"

        produced = set().union(*(_field_names(t["returns"]) for t in tools if t["operation"] == "read"))
        uses = {k: sum(k in t["parameters"]["properties"] for t in tools) for k in id_types}
        assert max(uses.values()) >= 3 and sum(n >= 2 for n in uses.values()) >= 2, f"{svc}: id uses {uses}"
        for t in tools:
            req = t["parameters"].get("required", [])
            unproduced = [p for p in req if p.endswith("_id") and p not in produced]
            assert not unproduced, f"{svc}.{t['name']}: required {unproduced} returned by no read tool"
            if t["operation"] == "write":
                assert any(p.endswith("_id") for p in req) or t["name"].split("_")[0] in {"create", "register"}, (
                    f"{svc}.{t['name']}: a write that names no existing record")
        # reads return records with their ids; one calculator-like read (a quote, free slots) may not
        id_free = [t["name"] for t in tools
                   if t["operation"] == "read" and not any(f.endswith("_id") for f in _field_names(t["returns"]))]
        assert len(id_free) <= 1, f"{svc}: reads returning no ids: {id_free}"


def test_domains_distinguishable_but_bridged(corpus):
    vocab = {
        svc: {p for t in tools for p in t["parameters"]["properties"]} for svc, tools in corpus.items()
    }
    for a, b in itertools.combinations(sorted(vocab), 2):
        jac = len(vocab[a] & vocab[b]) / len(vocab[a] | vocab[b])
        assert jac < 0.3, f"{a} and {b} share too much parameter vocabulary ({jac:.2f})"
    id_services: dict[str, set] = {}
    for svc, names in vocab.items():
        for n in names:
            if n.endswith("_id"):
                id_services.setdefault(n, set()).add(svc)
    bridges = {k: v for k, v in id_services.items() if len(v) >= 3}
    assert {"customer_id", "payment_method_id"} <= set(bridges), bridges


def test_parameter_variety(corpus):
    params = [p for tools in corpus.values() for t in tools for p in t["parameters"]["properties"].values()]
    assert sum(p["type"] == "object" for p in params) >= 5, "nested object parameters"
    assert sum(p["type"] == "array" and p["items"]["type"] == "string" for p in params) >= 10, "arrays of strings"
    assert sum(p["type"] == "array" and p["items"]["type"] == "object" for p in params) >= 2, "arrays of objects"
    assert sum("default" in p for p in params) >= 20, "optional parameters with defaults"
    assert sum("enum" in p for p in params) >= 30, "enums"
    assert sum(p.get("format") == "date" for p in params) >= 15, "dates"
    assert {p["type"] for p in params} == TYPES


# ---------------------------------------------------------------- source, packaging, loader


def test_files_match_the_generator(tmp_path):
    from agentscaler_dagster.starter_corpus import _build

    built = _build.build(tmp_path)
    assert [p.name for p in built] == [p.name for p in starter_corpus_files()]
    stale = [p.name for p in built if p.read_bytes() != (STARTER_CORPUS_DIR / p.name).read_bytes()]
    assert not stale, f"regenerate with `python -m agentscaler_dagster.starter_corpus._build`: {stale}"


def test_package_data_ships_the_files():
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    section = pyproject.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    patterns = re.findall(r'"(\*[^"]*)"', section.split("=", 1)[1])
    unshipped = [p.name for p in starter_corpus_files() if not any(fnmatch.fnmatch(p.name, pat) for pat in patterns)]
    assert not unshipped, f"not matched by package-data {patterns}: {unshipped}"


def test_corpus_loader_ingests_everything(tmp_path, corpus):
    ingest_mod = pytest.importorskip("agentscaler_dagster.corpus.ingest")
    from agentscaler_dagster.corpus import read_corpus

    report = ingest_mod.ingest([STARTER_CORPUS_DIR], tmp_path / "out", workers=1, use_cache=False)
    expected = sum(len(tools) for tools in corpus.values())
    assert report.quarantined == [], report.quarantined[:5]
    assert report.ingested >= 150
    assert (report.ingested, report.filtered, report.duplicates, report.renamed) == (expected, 0, 0, 0)
    assert report.files_per_format == {"mcp": 3, "openai": 4, "openapi3": 9}
    assert report.api_titles == len(corpus)

    tools = read_corpus(tmp_path / "out")
    mine = {t["name"]: t for ts in corpus.values() for t in ts}
    assert {t.name for t in tools} == set(mine)
    wrong = [t.name for t in tools if t.operation != mine[t.name]["operation"]]
    assert not wrong, f"the loader classifies these differently from the corpus design: {wrong}"
    assert all(t.returns and t.returns.get("properties") for t in tools)
    by_name = {t.name: t for t in tools}
    # $ref into components resolved: the order's line items come through with their product ids
    order_items = by_name["create_order"].returns["properties"]["items"]["items"]["properties"]
    assert "product_id" in order_items
    assert by_name["create_order"].http.method == "POST"
