"""MCP ``tools/list`` results: ``{"tools": [...]}`` or the JSON-RPC ``{"result": {"tools": [...]}}``.

Each tool gives ``name``, ``description``, ``inputSchema`` and optionally ``outputSchema`` and
``annotations`` (``readOnlyHint`` / ``destructiveHint`` decide read or write when present). ``$ref`` into
the schema's own ``$defs`` are resolved. The API title is ``serverInfo.name`` when the file carries it,
else the file stem.
"""

from __future__ import annotations

from typing import Any

from agentscaler_dagster.corpus.loaders import FileContext, LoadResult, as_str
from agentscaler_dagster.corpus.readers import mcp_tools
from agentscaler_dagster.corpus.schema import Resolver, clean_parameters, clean_schema

CAPS = {"max_depth": 8, "max_nodes": 600}


def load(doc: Any, ctx: FileContext) -> LoadResult:
    tools = mcp_tools(doc)
    if tools is None:
        raise ValueError("no MCP tools list found (expected {'tools': [{name, inputSchema}, ...]})")
    body = doc["result"] if isinstance(doc.get("result"), dict) else doc
    server = body.get("serverInfo") if isinstance(body.get("serverInfo"), dict) else {}
    meta = {"api_title": as_str(server.get("name")) or ctx.stem, "provider": as_str(server.get("name")), "categories": []}
    result = LoadResult()
    for i, tool in enumerate(tools):
        label = tool.get("name") if isinstance(tool, dict) and isinstance(tool.get("name"), str) else f"tool {i}"
        result.attempt(label, lambda tool=tool: _tool(tool, meta))
    return result


def _tool(tool: Any, meta: dict) -> dict:
    if not isinstance(tool, dict) or not as_str(tool.get("name")):
        raise ValueError("tool has no name")
    schema = tool.get("inputSchema")
    out = tool.get("outputSchema")
    ann = tool.get("annotations") if isinstance(tool.get("annotations"), dict) else None
    return {
        "original_name": as_str(tool["name"]),
        "description": tool.get("description"),
        "summary": (ann or {}).get("title") or tool.get("title"),
        "parameters": clean_parameters(schema, Resolver(schema), **CAPS),
        "returns": (clean_schema(out, Resolver(out), **CAPS) or None) if isinstance(out, dict) else None,
        "http_method": None,
        "http_path": None,
        "annotations": ann,
        **meta,
    }
