"""Corpus stage: loaders, normalisation, filter/dedup, broken inputs, CLI, determinism, incremental reuse.

Everything is real: the fixture files under tests/fixtures/corpus/ (one per format), broken files the tests
generate in tmp_path, the real parquet writer, the real process pool. No mocks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from agentscaler_dagster.contracts import ToolSpec
from agentscaler_dagster.corpus import (
    IngestError,
    IngestReport,
    classify,
    detect_format,
    explicit_description,
    ingest,
    read_corpus,
    write_corpus,
)
from agentscaler_dagster.corpus import cli as corpus_cli
from agentscaler_dagster.corpus.normalise import valid_name
from agentscaler_dagster.corpus.schema import MAX_ENUM, UnresolvableRef, clean_parameters, clean_schema

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "corpus"
NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")
ALLOWED_KEYS = {"type", "description", "properties", "required", "items", "enum", "format", "default", "minimum", "maximum"}
JSON_TYPES = {"object", "array", "string", "integer", "number", "boolean"}
COLUMNS = {"tool_id", "name", "description", "parameters", "returns", "operation", "source_file", "source_format",
           "api_title", "provider", "categories", "http_method", "http_path", "original_name"}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def walk_schemas(schema: dict):
    """Every subschema (iteratively)."""
    todo = [schema]
    while todo:
        s = todo.pop()
        yield s
        todo.extend((s.get("properties") or {}).values())
        if isinstance(s.get("items"), dict):
            todo.append(s["items"])


def assert_clean(schema: dict) -> None:
    for s in walk_schemas(schema):
        assert set(s) <= ALLOWED_KEYS, set(s) - ALLOWED_KEYS
        if "type" in s:
            assert s["type"] in JSON_TYPES, s
        if s.get("type") == "array":
            assert "items" in s
        if "required" in s:
            assert set(s["required"]) <= set(s.get("properties") or {}), s


def by_original(tools: list[ToolSpec]) -> dict[str, ToolSpec]:
    return {(t.source.original_name or t.name): t for t in tools}


@pytest.fixture(scope="module")
def fixture_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("fixture_corpus")
    report = ingest([FIXTURES], out)
    return report, read_corpus(out), out


# ---------------------------------------------------------------- one file per format


def test_every_format_detected_and_counted(fixture_corpus):
    report, tools, _ = fixture_corpus
    assert report.files_per_format == {"bfcl": 1, "mcp": 1, "openai": 1, "openapi3": 1, "swagger2": 1, "toolbench": 1}
    assert report.ingested_per_format == {"bfcl": 3, "mcp": 3, "openai": 3, "openapi3": 5, "swagger2": 3, "toolbench": 2}
    assert report.quarantined == [] and report.counts_add_up()
    assert len(tools) == report.ingested == 19
    assert len({t.name for t in tools}) == len(tools)
    for t in tools:
        assert NAME_RE.match(t.name), t.name
        assert t.parameters["type"] == "object"
        assert_clean(t.parameters)
        if t.returns:
            assert_clean(t.returns)


def test_openapi31_yaml(fixture_corpus):
    tools = by_original(fixture_corpus[1])
    lst = tools["listPets"]
    assert lst.http.method == "GET" and lst.http.path == "/pets" and lst.operation == "read"
    props = lst.parameters["properties"]
    # path-level $ref parameter merged; the transport header and the cookie left out
    assert set(props) == {"X-Tenant", "tag", "limit"}
    assert lst.parameters["required"] == ["X-Tenant"]
    assert props["tag"] == {"type": "string", "description": "Only pets with this tag."}  # [string, null] -> string
    assert props["limit"] == {"type": "integer", "format": "int32", "default": 20, "maximum": 100}
    assert lst.returns["type"] == "array"
    pet = lst.returns["items"]
    # allOf merged; the Pet -> parent -> Pet cycle cut to a bare object
    assert pet["required"] == ["name", "id"] and pet["properties"]["parent"] == {"type": "object"}
    assert lst.source.api_title == "Fixture Pet Store" and lst.source.provider == "petstore.example"
    assert lst.source.categories == ["animals", "ecommerce"]

    create = tools["createPet"]
    assert create.operation == "write" and create.returns["properties"]["id"]["format"] == "int64"
    assert set(create.parameters["required"]) == {"X-Tenant", "name"}  # required body property
    search = tools["searchPets"]
    assert search.operation == "read"  # POST, but the name says search
    assert search.parameters["properties"]["kind"] == {"type": "string", "enum": ["cat", "dog", "bird"]}
    assert "required" not in search.parameters  # optional body: its required list does not apply
    noid = tools["get /pets/{petId}"]
    assert noid.name == "get_pets_petId" and noid.parameters["required"] == ["petId"]
    assert noid.description == "Show one pet by its id"  # summary fallback
    assert tools["deletePet"].operation == "write"


def test_swagger2_json(fixture_corpus):
    tools = by_original(fixture_corpus[1])
    add = tools["addBook"]
    assert add.source.format == "swagger2" and add.source.provider == "library.example.org"
    assert set(add.parameters["properties"]) == {"isbn", "title", "tags", "author"}  # body flattened
    assert add.parameters["required"] == ["isbn", "title"]
    assert add.parameters["properties"]["author"]["properties"]["books"]["items"] == {"type": "object"}  # cycle cut
    cover = tools["uploadCover"]
    assert cover.parameters["properties"]["image"] == {"type": "string", "format": "binary"}
    assert cover.parameters["required"] == ["isbn", "image"] and cover.returns is None
    assert tools["findBooks"].returns["items"]["required"] == ["isbn", "title"]


def test_openai_jsonl(fixture_corpus):
    tools = by_original(fixture_corpus[1])
    w = tools["get_weather"]
    assert w.parameters["required"] == ["city"]  # 'country' is not a property
    assert w.source.api_title == "Fixture Weather" and w.source.categories == ["weather"]
    mail = tools["send-email!"]
    assert mail.name == "send_email" and mail.source.original_name == "send-email!" and mail.operation == "write"
    assert mail.parameters["properties"]["attachments"] == {"type": "array", "items": {}}  # tuple -> array
    assert tools["convert_currency"].parameters["properties"]["amount"] == {"type": "number"}
    assert tools["convert_currency"].source.api_title == "openai_tools"  # file stem when the file gives none


def test_mcp_jsonrpc(fixture_corpus):
    tools = by_original(fixture_corpus[1])
    assert tools["read_file"].operation == "read"
    assert tools["summarise_notes"].operation == "write"  # readOnlyHint: false decides
    note = tools["write_note"]
    assert note.parameters["properties"]["note"]["required"] == ["title"]  # $defs reference resolved
    assert note.returns == {"type": "object", "properties": {"id": {"type": "string"}}}


def test_toolbench(fixture_corpus):
    tools = by_original(fixture_corpus[1])
    s = tools["Search Recipes"]
    assert s.name == "Search_Recipes" and s.source.categories == ["Food"] and s.http.path == "/recipes/search"
    assert s.parameters["properties"]["since"] == {"type": "string", "format": "date", "description": "Added after."}
    assert s.parameters["properties"]["q"]["default"] == "pasta" and s.parameters["required"] == ["q"]
    assert s.returns["properties"]["results"]["items"]["properties"]["minutes"] == {"type": "number"}
    save = tools["Save Recipe"]
    assert save.description == "Recipes and ingredients from a small cookbook service."  # tool description fallback
    assert save.operation == "write"


def test_bfcl(fixture_corpus):
    tools = by_original(fixture_corpus[1])
    add = tools["math.add"]
    assert add.name == "math_add" and add.source.api_title == "bfcl_math" and add.source.categories == ["bfcl_math"]
    assert add.parameters["properties"]["a"] == {"type": "number", "description": "First number."}
    assert add.returns == {"type": "object", "properties": {"result": {"type": "number", "description": "Sum."}}}
    assert tools["mean"].operation == "read" and tools["set_precision"].operation == "write"


def test_detect_and_force_format(tmp_path):
    assert detect_format({"openapi": "3.1.0", "paths": {}}) == "openapi3"
    assert detect_format({"swagger": "2.0"}) == "swagger2"
    assert detect_format({"tools": [{"name": "a", "inputSchema": {}}]}) == "mcp"
    assert detect_format([{"type": "function", "function": {"name": "a"}}]) == "openai"
    assert detect_format([{"name": "a", "parameters": {"type": "dict"}}]) == "bfcl"
    assert detect_format({"tool_name": "x", "api_list": []}) == "toolbench"
    assert detect_format({"hello": "world"}) is None
    # an OpenAI-style file with a .txt name, forced; and a wrong force is quarantined, not a crash
    f = tmp_path / "tools.txt"
    f.write_text(json.dumps([{"name": "lookup_city", "description": "Look up a city by its name.", "parameters": {}}]))
    rep = ingest([f], tmp_path / "o1", force_format="openai")
    assert rep.ingested == 1 and rep.files_per_format == {"openai": 1}
    rep = ingest([f], tmp_path / "o2", force_format="openapi")
    assert rep.ingested == 0 and "forced format openapi" in rep.quarantined[0]["reason"]
    with pytest.raises(IngestError, match="unknown format"):
        ingest([f], tmp_path / "o3", force_format="graphql")


# ---------------------------------------------------------------- schema and rules


def test_schema_cleaning_rules():
    raw = {
        "$schema": "x", "type": "dict", "x-vendor": 1, "examples": [1], "additionalProperties": False,
        "properties": {
            "a": {"type": "float"}, "b": {"type": "int"}, "c": {"type": "tuple"}, "d": {"type": ["null", "boolean"]},
            "e": {"anyOf": [{"type": "null"}, {"type": "string", "format": "uuid"}]},
            "f": {"allOf": [{"properties": {"x": {"type": "str"}}, "required": ["x"]}, {"properties": {"y": {"type": "long"}}}]},
            "g": {"enum": list(range(MAX_ENUM + 1))}, "h": {"enum": [1, 2]}, "i": {"type": "weird"},
            "j": {"type": "number", "default": float("nan"), "maximum": float("inf"), "minimum": 0},
        },
        "required": ["a", "zzz", "a"],
    }
    out = clean_parameters(raw)
    p = out["properties"]
    assert out["required"] == ["a"] and "$schema" not in out and "x-vendor" not in out
    assert [p[k]["type"] for k in "abcd"] == ["number", "integer", "array", "boolean"]
    assert p["e"] == {"type": "string", "format": "uuid"}
    assert p["f"] == {"type": "object", "properties": {"x": {"type": "string"}, "y": {"type": "integer"}}, "required": ["x"]}
    assert "enum" not in p["g"] and p["h"] == {"type": "integer", "enum": [1, 2]} and p["i"] == {"type": "string"}
    assert p["j"] == {"type": "number", "minimum": 0}  # NaN / Infinity cannot be written as JSON
    assert_clean(out)


def test_deep_nesting_and_cycles_do_not_recurse_forever():
    deep: dict = {"type": "string"}
    for _ in range(1000):
        deep = {"type": "object", "properties": {"a": deep}}
    out = clean_schema(deep, max_depth=8)
    depth = 0
    node = out
    while "properties" in node:
        node, depth = node["properties"]["a"], depth + 1
    assert depth == 8 and node == {"type": "object"}
    doc = {"defs": {"A": {"type": "object", "properties": {"b": {"$ref": "#/defs/B"}}}, "B": {"type": "object", "properties": {"a": {"$ref": "#/defs/A"}}}}}
    from agentscaler_dagster.corpus.schema import Resolver

    out = clean_schema({"$ref": "#/defs/A"}, Resolver(doc))
    assert out["properties"]["b"]["properties"]["a"] == {"type": "object"}
    with pytest.raises(UnresolvableRef, match="#/defs/Missing"):
        clean_schema({"$ref": "#/defs/Missing"}, Resolver(doc))


@pytest.mark.parametrize(
    "name, description, method, annotations, expected",
    [
        ("listUsers", "", "GET", None, "read"),
        ("createUser", "", "POST", None, "write"),
        ("searchOrders", "", "POST", None, "read"),  # POST whose name reads
        ("queryMetrics", "", "PUT", None, "read"),
        ("userProfile", "", "DELETE", None, "write"),
        ("getOrCreate", "", "GET", None, "read"),
        ("get_balance", "", None, None, "read"),
        ("book_flight", "", None, None, "write"),
        ("cancel_booking", "", None, None, "write"),
        ("transfer_funds", "", None, None, "write"),
        ("ls", "List the directory.", None, None, "read"),
        ("weather_now", "Fetch the weather now.", None, None, "read"),
        ("x_y", "This tool belongs to the API. Tool description: Remove an item from the cart.", None, None, "write"),
        ("do_it", "Something vague here.", None, None, "read"),  # nothing found: read
        ("delete_all", "", None, {"readOnlyHint": True}, "read"),  # MCP annotation first
        ("peek", "", None, {"destructiveHint": True}, "write"),
    ],
)
def test_read_write_rules(name, description, method, annotations, expected):
    assert classify(name, description, method, annotations) == expected


def test_valid_names():
    assert valid_name("send-email!") == "send_email"
    assert valid_name("3d.render") == "_3d_render"
    assert valid_name("") == "tool"
    long = valid_name("x" * 100)
    assert len(long) == 64 and NAME_RE.match(long)


def _openai_file(path: Path, tools: list[dict], **meta) -> None:
    path.write_text(json.dumps({**meta, "tools": [{"type": "function", "function": t} for t in tools]}))


def test_dedup_collisions_and_filter(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    base = {"name": "get_item", "description": "Get one item by its id.", "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}
    _openai_file(src / "a.json", [
        base,
        {"name": "tiny", "description": "Tiny.", "parameters": {}},  # < 3 words, no summary: composed, kept
        {"name": "bad_schema", "description": "Has a broken parameter schema.", "parameters": "not a schema"},
    ], api_title="Alpha Shop")
    _openai_file(src / "b.json", [
        dict(base),  # exact duplicate of a.json's
        {**base, "name": "Get-Item", "description": "Fetch an item, same signature."},  # near duplicate
        {**base, "parameters": {"type": "object", "properties": {"sku": {"type": "string"}}}},  # same name, other signature
    ], api_title="Beta Store")
    _openai_file(src / "c.json", [{**base, "parameters": {"type": "object", "properties": {"ean": {"type": "integer"}}}}], api_title="Beta Store")
    rep = ingest([src], tmp_path / "out")
    assert rep.operations_seen == 7 and rep.counts_add_up()
    assert rep.duplicates == 2 and {d["reason"] for d in rep.duplicate_list} == {"exact_duplicate", "near_duplicate"}
    assert all(d["duplicate_of"]["path"] == "src/a.json" for d in rep.duplicate_list)
    assert rep.filtered == 1 and rep.filter_counts == {"unusable_schema": 1}
    tiny = next(t for t in read_corpus(tmp_path / "out") if t.name == "tiny")
    assert tiny.description == "Tiny. Part of the Alpha Shop API. Takes no parameters."
    assert tiny.source.original_description == "Tiny." and tiny.source.description_origin == "composed"
    assert rep.descriptions == {"composed": 1, "source": 3}
    names = {t.source.file + ":" + str(t.parameters["properties"] and sorted(t.parameters["properties"])[0]): t.name
             for t in read_corpus(tmp_path / "out")}
    # first keeps the name, the second gets the API slug, the third (same slug) a short hash
    assert names["src/a.json:id"] == "get_item" and names["src/b.json:sku"] == "get_item_beta_store"
    assert re.fullmatch(r"get_item_[0-9a-f]{8}", names["src/c.json:ean"]) and rep.renamed == 2


def test_description_rewrite(tmp_path):
    rep = ingest([FIXTURES / "bfcl_math.json"], tmp_path / "o", rewrite_descriptions=True)
    assert rep.rewritten == 3
    add = next(t for t in read_corpus(tmp_path / "o") if t.name == "math_add")
    assert "Inputs: a (number, required): First number.; b (number, required): Second number." in add.description
    assert add.description.endswith("Returns: an object with result (number).")
    assert explicit_description(add) == add.description  # idempotent
    calls = []

    def rewriter(tool):
        calls.append(tool.name)
        if tool.name == "mean":
            raise RuntimeError("model timed out")
        return f"Rewritten: {tool.name}"

    rep = ingest([FIXTURES / "bfcl_math.json"], tmp_path / "o2", rewriter=rewriter)
    assert sorted(calls) == ["math_add", "mean", "set_precision"] and rep.rewritten == 2
    assert rep.rewrite_errors[0]["name"] == "mean"
    descs = {t.name: t.description for t in read_corpus(tmp_path / "o2")}
    assert descs["math_add"] == "Rewritten: math_add" and descs["mean"].startswith("This tool belongs")


# ---------------------------------------------------------------- broken inputs


def _spec(paths: dict, components: dict | None = None) -> dict:
    return {"openapi": "3.0.3", "info": {"title": "Gen", "version": "1"}, "paths": paths, "components": components or {}}


def _op(op_id: str, **extra) -> dict:
    return {"operationId": op_id, "description": f"Generated operation {op_id} for the test.", "responses": {"200": {"description": "ok"}}, **extra}


def test_broken_inputs_are_quarantined_and_the_rest_ingested(tmp_path):
    src = tmp_path / "mixed"
    src.mkdir()
    (src / "good.json").write_text(json.dumps(_spec({"/a": {"get": _op("getA")}})))
    (src / "invalid.json").write_text('{"openapi": "3.0.0", "paths": {')
    (src / "garbage.yaml").write_text("openapi: [3.0\n  paths: : :\n\t- {")
    (src / "binary.json").write_bytes(bytes(range(256)) * 4)
    (src / "empty.json").write_text("   \n")
    (src / "latin1.json").write_bytes('{"name": "café"}'.encode("latin-1"))
    (src / "unknown.json").write_text(json.dumps({"hello": "world", "items": [1, 2]}))
    (src / "notes.txt").write_text("not a spec")  # skipped: no spec extension (listed, not read)
    # one operation with a dangling $ref: that operation quarantined (ref named), its sibling kept
    (src / "dangling.json").write_text(json.dumps(_spec({
        "/x": {"get": _op("getX", parameters=[{"$ref": "#/components/parameters/Nope"}])},
        "/y": {"get": _op("getY")},
    })))
    # a schema nested 1,000 levels deep (written as text: json.dumps itself would hit the recursion limit)
    deep = '{"type": "object", "properties": {"n": ' * 1000 + '{"type": "string"}' + "}}" * 1000
    body = {"content": {"application/json": {"schema": "DEEP"}}}
    text = json.dumps(_spec({"/deep": {"post": _op("postDeep", requestBody=body)}})).replace('"DEEP"', deep)
    (src / "deep.json").write_text(text)
    # JSON lines with one broken line
    (src / "tools.jsonl").write_text(
        json.dumps({"type": "function", "function": {"name": "ok_tool", "description": "Does a fine thing well.", "parameters": {}}})
        + "\n{broken\n"
    )
    rep = ingest([src], tmp_path / "out")
    reasons = {q["path"].split("/")[-1]: q["reason"] for q in rep.quarantined if "operation" not in q}
    assert reasons["invalid.json"].startswith("invalid JSON")
    assert reasons["garbage.yaml"].startswith("invalid YAML")
    assert reasons["binary.json"].startswith("binary file")
    assert reasons["empty.json"] == "empty file"
    assert reasons["latin1.json"] == "not UTF-8: byte 0xe9 at offset 13"
    assert reasons["unknown.json"].startswith("no known format")
    ops = {q["operation"]: q["reason"] for q in rep.quarantined if "operation" in q}
    assert "#/components/parameters/Nope" in ops["GET /x (getX)"]
    assert ops["line 2"].startswith("invalid JSON")
    assert rep.skipped_files == ["mixed/notes.txt"]
    names = {t.name for t in read_corpus(tmp_path / "out")}
    assert names == {"getA", "getY", "postDeep", "ok_tool"}
    assert rep.quarantined_files == 6 and rep.quarantined_operations == 2 and rep.counts_add_up()
    deep_tool = next(t for t in read_corpus(tmp_path / "out") if t.name == "postDeep")
    assert len(json.dumps(deep_tool.parameters)) < 1000  # capped, not 1,000 levels


def test_ten_megabyte_spec(tmp_path):
    filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 40
    paths = {f"/r{i}": {"get": _op(f"getR{i}", summary=filler, parameters=[{"name": "q", "in": "query", "description": filler, "schema": {"type": "string"}}])} for i in range(2200)}
    f = tmp_path / "big.json"
    f.write_text(json.dumps(_spec(paths)))
    assert f.stat().st_size > 10 * 1024 * 1024
    rep = ingest([f], tmp_path / "out")
    assert rep.operations_seen == 2200 and rep.ingested == 2200 and rep.quarantined == []


# ---------------------------------------------------------------- CLI, determinism, incremental


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="agentscaler")
    sub = parser.add_subparsers(dest="command", required=True)
    corpus_cli.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_contract(tmp_path, capsys):
    out = tmp_path / "out"
    assert _cli(["ingest", str(FIXTURES), "--out", str(out)]) == 0
    assert "ingested 19 tools from 6 files" in capsys.readouterr().out
    table = pq.read_table(out / "corpus.parquet")
    assert COLUMNS <= set(table.column_names) and table.num_rows == 19
    ids = table.column("tool_id").to_pylist()
    assert ids == sorted(ids)
    report = json.loads((out / "ingest_report.json").read_text())
    for key in ("inputs", "ingested", "duplicates", "filtered", "quarantined", "operations_seen", "reused_files", "seconds"):
        assert key in report
    IngestReport.model_validate(report)
    # a broken file still exits 0; a path that does not exist, or an output that cannot be written, exits 2
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    assert _cli(["ingest", str(bad), "--out", str(tmp_path / "o2")]) == 0
    capsys.readouterr()
    assert _cli(["ingest", str(tmp_path / "missing"), "--out", str(tmp_path / "o3")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert _cli(["ingest", str(FIXTURES), "--out", str(blocker / "sub")]) == 2
    assert "not writable" in capsys.readouterr().err
    assert _cli(["ingest", str(FIXTURES / "bfcl_math.json"), "--out", str(tmp_path / "o4"), "--format", "bfcl"]) == 0


def test_top_level_cli(tmp_path):
    try:
        from agentscaler_dagster.cli import main
        main_parser_ok = True
        from agentscaler_dagster.cli import build_parser

        build_parser()
    except (ImportError, AttributeError) as exc:  # other stages' cli modules may not exist yet
        main_parser_ok = False
        reason = str(exc)
    if not main_parser_ok:
        pytest.skip(f"top-level CLI not complete yet: {reason}")
    assert main(["ingest", str(FIXTURES), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "corpus.parquet").is_file()


def test_deterministic_bytes_across_runs_and_worker_counts(tmp_path):
    a = ingest([FIXTURES], tmp_path / "a", workers=1)
    b = ingest([FIXTURES], tmp_path / "b", workers=2)
    assert a.corpus_sha256 == b.corpus_sha256 == sha(tmp_path / "a" / "corpus.parquet") == sha(tmp_path / "b" / "corpus.parquet")


def test_incremental_reuse(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(FIXTURES, src)
    out = tmp_path / "out"
    first = ingest([src], out)
    assert first.reused_files == 0 and first.parsed_files == 6
    again = ingest([src], out)
    assert again.reused_files == again.inputs == 6 and again.parsed_files == 0
    assert again.corpus_sha256 == first.corpus_sha256
    text = (src / "bfcl_math.json").read_text().replace("Calculate the mean", "Compute the average")
    (src / "bfcl_math.json").write_text(text)
    ticks = []
    third = ingest([src], out, progress=lambda done, total: ticks.append((done, total)))
    assert third.reused_files == 5 and third.parsed_files == 1
    assert ticks == [(i, 6) for i in range(1, 7)]
    assert any("Compute the average" in t.description for t in read_corpus(out))
    assert len(list((out / ".cache").glob("*.json"))) == 6  # the stale entry was pruned


def test_write_corpus_roundtrip(fixture_corpus, tmp_path):
    _, tools, out = fixture_corpus
    write_corpus(tools, tmp_path)
    assert sha(tmp_path / "corpus.parquet") == sha(out / "corpus.parquet")
    assert [t.model_dump() for t in read_corpus(tmp_path)] == [t.model_dump() for t in tools]
