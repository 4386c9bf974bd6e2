"""BFCL function docs: JSON lines of ``{name, description, parameters: {"type": "dict", ...}, response}``.

Python-flavoured types (dict, float, int, tuple, any) are mapped by the schema cleaner. The file stem
(e.g. ``math_api``) is the API title and the category; the provider is ``bfcl``.
"""

from __future__ import annotations

from typing import Any

from agentscaler_dagster.corpus.loaders import FileContext, LoadResult, as_str
from agentscaler_dagster.corpus.schema import Resolver, clean_parameters, clean_schema

CAPS = {"max_depth": 8, "max_nodes": 600}


def load(doc: Any, ctx: FileContext) -> LoadResult:
    items = doc if isinstance(doc, list) else [doc]
    meta = {"api_title": ctx.stem, "provider": "bfcl", "categories": [ctx.stem]}
    result = LoadResult()
    for i, item in enumerate(items):
        label = item.get("name") if isinstance(item, dict) and isinstance(item.get("name"), str) else f"item {i}"
        result.attempt(label, lambda item=item: _tool(item, meta))
    return result


def _tool(item: Any, meta: dict) -> dict:
    if not isinstance(item, dict) or not as_str(item.get("name")):
        raise ValueError("function doc has no name")
    params = item.get("parameters")
    resp = item.get("response")
    return {
        "original_name": as_str(item["name"]),
        "description": item.get("description"),
        "summary": None,
        "parameters": clean_parameters(params, Resolver(params), **CAPS),
        "returns": (clean_schema(resp, **CAPS) or None) if isinstance(resp, dict) else None,
        "http_method": None,
        "http_path": None,
        **meta,
    }
