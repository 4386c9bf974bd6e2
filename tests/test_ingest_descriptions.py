"""Short or missing descriptions are composed, never dropped; the source's own text is kept alongside.

Real ingest on OpenAPI documents written into tmp_path; the real parquet round trip. No mocks.
"""

from __future__ import annotations

import json

from agentscaler_dagster.corpus import ingest, read_corpus
from agentscaler_dagster.corpus.store import read_rows


def _petstore(tmp_path):
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "Petstore", "version": "1"},
        "paths": {
            "/pets/{petId}": {"get": {"operationId": "showPetById", "responses": {"200": {"description": "ok"}},
                                      "parameters": [{"name": "petId", "in": "path", "required": True,
                                                      "schema": {"type": "string"}}]}},
            "/pets": {
                "get": {"operationId": "listPets", "summary": "List all pets", "description": "Pets.",
                        "responses": {"200": {"description": "ok"}},
                        "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer"}}]},
                "post": {"operationId": "createPets", "description": "Create a pet in the store.",
                         "responses": {"201": {"description": "ok"}}},
            },
        },
    }
    path = tmp_path / "petstore.json"
    path.write_text(json.dumps(spec))
    return path


def test_missing_and_short_descriptions_are_composed_not_dropped(tmp_path):
    rep = ingest([_petstore(tmp_path)], tmp_path / "out")
    assert rep.ingested == 3 and rep.filtered == 0 and rep.counts_add_up()
    assert rep.descriptions == {"composed": 1, "source": 1, "summary": 1}
    tools = {t.name: t for t in read_corpus(tmp_path / "out")}
    show = tools["showPetById"]
    assert show.description == "Show pet by id. GET /pets/{petId} in the Petstore API. Parameters: petId."
    assert show.source.description_origin == "composed" and show.source.original_description == ""
    listed = tools["listPets"]
    assert listed.description == "List all pets" and listed.source.original_description == "Pets."
    # a tool described by its own text carries no extras: it looks as it did before the columns existed
    assert tools["createPets"].description == "Create a pet in the store."
    assert "description_origin" not in tools["createPets"].source.model_dump()
    origins = {r["name"]: r["description_origin"] for r in read_rows(tmp_path / "out")}
    assert origins == {"showPetById": "composed", "listPets": "summary", "createPets": "source"}


def test_rewrite_keeps_the_original_and_counts(tmp_path):
    rep = ingest([_petstore(tmp_path)], tmp_path / "out", rewriter=lambda tool: f"Rewritten {tool.name} text.")
    assert rep.rewritten == 3 and rep.descriptions == {"llm": 3}
    rows = {r["name"]: r for r in read_rows(tmp_path / "out")}
    assert rows["createPets"]["original_description"] == "Create a pet in the store."
    assert rows["showPetById"]["original_description"] == ""  # the source had none; the composed text was replaced
    assert rows["listPets"]["original_description"] == "Pets."
