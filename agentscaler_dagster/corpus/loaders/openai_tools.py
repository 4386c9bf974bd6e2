"""OpenAI tool / function JSON: ``{"type": "function", "function": {...}}`` or bare function objects.

Accepted containers: a JSON list, JSON lines, one object, or ``{"tools" | "functions": [...]}``. Metadata
the corpus keeps, when the file gives it: ``api_title`` (or ``title``), ``provider`` and ``categories``
(or ``category``) on the container object or on each item (the item wins); otherwise the API title is
the file stem. A result schema may be given as ``returns``, ``response`` or ``output_schema``.
"""

from __future__ import annotations

from typing import Any

from agentscaler_dagster.corpus.loaders import FileContext, LoadResult, as_str, as_str_list
from agentscaler_dagster.corpus.readers import openai_items
from agentscaler_dagster.corpus.schema import Resolver, clean_parameters, clean_schema

CAPS = {"max_depth": 8, "max_nodes": 600}


def _meta(obj: Any, fallback: dict) -> dict:
    if not isinstance(obj, dict):
        return dict(fallback)
    cats = as_str_list(obj.get("categories")) or as_str_list(obj.get("category"))
    return {
        "api_title": as_str(obj.get("api_title")) or as_str(obj.get("title")) or fallback["api_title"],
        "provider": as_str(obj.get("provider")) or fallback["provider"],
        "categories": cats or fallback["categories"],
    }


def load(doc: Any, ctx: FileContext) -> LoadResult:
    result = LoadResult()
    items = openai_items(doc)
    if items is None:
        raise ValueError("no OpenAI tool objects found (expected {'type': 'function', 'function': {...}} items)")
    base = {"api_title": ctx.stem, "provider": None, "categories": []}
    container = _meta(doc, base) if isinstance(doc, dict) and items is not doc else base
    for i, item in enumerate(items):
        fn = item.get("function") if isinstance(item, dict) and isinstance(item.get("function"), dict) else item
        label = fn.get("name") if isinstance(fn, dict) and isinstance(fn.get("name"), str) else f"item {i}"
        result.attempt(str(label), lambda item=item, fn=fn: _tool(item, fn, container))
    return result


def _tool(item: Any, fn: Any, container: dict) -> dict:
    if not isinstance(fn, dict):
        raise ValueError(f"tool is a {type(fn).__name__}, not an object")
    name = as_str(fn.get("name"))
    if not name:
        raise ValueError("tool has no name")
    meta = _meta(fn, _meta(item, container))
    params = fn.get("parameters")
    ret = next((fn[k] for k in ("returns", "response", "output_schema") if isinstance(fn.get(k), dict)), None)
    return {
        "original_name": name,
        "description": fn.get("description"),
        "summary": None,
        "parameters": clean_parameters(params, Resolver(params), **CAPS),
        "returns": (clean_schema(ret, Resolver(ret), **CAPS) or None) if ret is not None else None,
        "http_method": None,
        "http_path": None,
        **meta,
    }
