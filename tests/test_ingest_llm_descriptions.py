"""The LLM option of description rewriting: only composed descriptions, through the project's client, cached.

Real: the project's OpenAICompatibleClient over real HTTP, ingest, the parquet round trip and the cache
files. Faked at the resource boundary: the chat server is a stdlib HTTP server in a thread that answers
every /v1/chat/completions request with a fixed message (and counts the requests).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agentscaler_dagster.corpus import ingest
from agentscaler_dagster.corpus.describe import LLMDescriber
from agentscaler_dagster.corpus.store import read_rows
from agentscaler_dagster.llm.client import OpenAICompatibleClient

from test_ingest_descriptions import _petstore


@pytest.fixture
def chat_server():
    state = {"answer": "Returns the pet with the given id from the store.", "requests": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state["requests"].append(body)
            reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": state["answer"]}}],
                                "usage": {"prompt_tokens": 10, "completion_tokens": 9}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    server.shutdown()


def test_llm_writes_only_composed_descriptions_and_caches_them(tmp_path, chat_server):
    spec = _petstore(tmp_path)
    cache = tmp_path / "descriptions"
    with OpenAICompatibleClient(base_url=chat_server["url"], model="tiny") as client:
        describer = LLMDescriber(client, cache)
        rep = ingest([spec], tmp_path / "a", rewriter=describer, rewrite_scope="composed")
        assert rep.rewritten == 1 and rep.descriptions == {"llm": 1, "source": 1, "summary": 1}
        assert describer.asked == 1 and len(chat_server["requests"]) == 1
        prompt = chat_server["requests"][0]["messages"][1]["content"]
        assert "GET /pets/{petId}" in prompt and "Petstore" in prompt and chat_server["requests"][0]["model"] == "tiny"
        rows = {r["name"]: r for r in read_rows(tmp_path / "a")}
        assert rows["showPetById"]["description"] == chat_server["answer"]
        assert rows["showPetById"]["original_description"] == ""  # the source had none
        assert len(list(cache.glob("*.json"))) == 1
        # same content again: answered from the cache, no request, same bytes
        again = LLMDescriber(client, cache)
        rep2 = ingest([spec], tmp_path / "b", rewriter=again, rewrite_scope="composed")
        assert again.asked == 0 and again.cached == 1 and len(chat_server["requests"]) == 1
        assert rep2.corpus_sha256 == rep.corpus_sha256


def test_a_useless_answer_keeps_the_composed_description(tmp_path, chat_server):
    chat_server["answer"] = "Pet."
    with OpenAICompatibleClient(base_url=chat_server["url"], model="tiny") as client:
        rep = ingest([_petstore(tmp_path)], tmp_path / "o", rewriter=LLMDescriber(client, None), rewrite_scope="composed")
    assert rep.rewritten == 0 and rep.descriptions["composed"] == 1
    assert "fewer than 3 words" in rep.rewrite_errors[0]["reason"]
    rows = {r["name"]: r for r in read_rows(tmp_path / "o")}
    assert rows["showPetById"]["description"].startswith("Show pet by id. GET /pets/{petId}")
