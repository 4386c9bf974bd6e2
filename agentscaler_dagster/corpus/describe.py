"""Descriptions written by an LLM (the paper's description rewriting), cached by content.

The programmatic default (``normalise.compose_description``) needs no model. This is the option: a tool
whose description was composed (its source had fewer than 3 words) is described by a chat model through
the project's OpenAI-compatible client (``llm.client.OpenAICompatibleClient``, the one the ``llm``
resource hands out). Each answer is stored under ``cache_dir/<key>.json``, the key being the sha256 of
everything the prompt is made of (prompt version, model, name, API, method, path, source text, parameters),
so a re-ingest asks the model only about tools that changed, and the same inputs give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from agentscaler_dagster.contracts import canonical_json
from agentscaler_dagster.corpus.normalise import MAX_DESCRIPTION, clean_description, usable

PROMPT_VERSION = 1
SYSTEM = ("You write the description of one API operation for a function-calling catalogue: one or two plain "
          "sentences saying what the operation does and what it needs. No markdown, no lists, no invented facts.")


def _facts(tool: Any) -> dict:
    src = tool.source
    return {
        "name": tool.name,
        "api": src.api_title,
        "http": f"{tool.http.method} {tool.http.path}" if tool.http else None,
        "source_text": getattr(src, "original_description", None),
        "composed": tool.description,
        "parameters": {k: (v or {}).get("description") or (v or {}).get("type")
                       for k, v in (tool.parameters.get("properties") or {}).items()},
    }


class LLMDescriber:
    """``describer(tool) -> description``: the ``rewriter`` hook of :func:`corpus.ingest`.

    ``client``: anything with ``chat(messages=..., temperature=..., max_tokens=..., seed=...)`` returning an
    OpenAI message (the project's client). A reply with fewer than 3 words raises, and ingest then keeps
    the composed description and records the error.
    """

    def __init__(self, client: Any, cache_dir: str | Path | None, *, max_tokens: int = 96):
        self.client = client
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.max_tokens = max_tokens
        self.asked = 0
        self.cached = 0

    def key(self, tool: Any) -> str:
        model = getattr(self.client, "model", "")
        return hashlib.sha256(canonical_json([PROMPT_VERSION, model, _facts(tool)]).encode("utf-8")).hexdigest()

    def __call__(self, tool: Any) -> str:
        key = self.key(tool)
        path = self.cache_dir / f"{key}.json" if self.cache_dir is not None else None
        if path is not None and path.is_file():
            try:
                self.cached += 1
                return json.loads(path.read_text(encoding="utf-8"))["description"]
            except (OSError, ValueError, KeyError):
                self.cached -= 1  # a torn entry only costs asking again
        facts = _facts(tool)
        reply = self.client.chat(
            messages=[{"role": "system", "content": SYSTEM},
                      {"role": "user", "content": "Describe this operation.\n" + json.dumps(facts, ensure_ascii=False, indent=1)}],
            temperature=0.0, max_tokens=self.max_tokens, seed=0)
        self.asked += 1
        text = clean_description(reply.get("content") if isinstance(reply, dict) else None)[:MAX_DESCRIPTION]
        if not usable(text):
            raise ValueError(f"the model's description of {tool.name!r} has fewer than 3 words: {text!r}")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"description": text, "facts": facts}, ensure_ascii=False, sort_keys=True),
                           encoding="utf-8")
            os.replace(tmp, path)
        return text
