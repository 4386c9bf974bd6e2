"""ToolBench / RapidAPI tool JSON: ``{tool_name, tool_description, title, api_list: [...]}``.

Each entry of ``api_list`` is one tool: ``name``, ``description``, ``method``, ``url``,
``required_parameters`` / ``optional_parameters`` (``{name, type, description, default}``, RapidAPI type
names such as STRING, NUMBER, ENUM, DATE (YYYY-MM-DD)) and ``template_response`` (an example whose leaf
values name types), turned into the result schema. The tool description is the summary an endpoint
without its own description falls back to. Category: the file's ``category`` / ``category_name``, else
its folder inside the ingested root (ToolBench keeps ``tools/<Category>/<tool>.json``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from agentscaler_dagster.corpus.loaders import FileContext, LoadResult, as_str, as_str_list
from agentscaler_dagster.corpus.schema import clean_schema, clean_text, schema_from_example

_RAPID_TYPES = {
    "STRING": "string", "NUMBER": "number", "INTEGER": "integer", "BOOLEAN": "boolean", "ARRAY": "array",
    "OBJECT": "object", "ENUM": "string", "DATE": "string", "TIME": "string", "GEOPOINT": "string",
    "FILE": "string", "CREDENTIALS": "string", "LIST": "array", "JSON": "object",
}


def load(doc: Any, ctx: FileContext) -> LoadResult:
    result = LoadResult()
    for tool in doc if isinstance(doc, list) else [doc]:
        if not isinstance(tool, dict) or not isinstance(tool.get("api_list"), list):
            result.quarantine(f"entry in {ctx.label}", "not a ToolBench tool object (no api_list)")
            continue
        tool_name = as_str(tool.get("tool_name")) or as_str(tool.get("title")) or ctx.stem
        cats = as_str_list(tool.get("category")) or as_str_list(tool.get("category_name"))
        if not cats and ctx.folder:
            cats = [ctx.folder]
        host = as_str(tool.get("host")) or (urlparse(str(tool.get("home_url") or "")).hostname or None)
        meta = {"api_title": as_str(tool.get("title")) or tool_name, "provider": host or "rapidapi", "categories": cats}
        for i, api in enumerate(tool["api_list"]):
            label = f"{tool_name}: {api.get('name') if isinstance(api, dict) else i}"
            result.attempt(label, lambda api=api: _api(api, tool, meta))
    return result


def _param_schema(p: dict) -> dict:
    raw = str(p.get("type") or "STRING").strip().upper()
    base = raw.split(" ")[0].split("(")[0]
    out: dict = {"type": _RAPID_TYPES.get(base, "string")}
    if base == "DATE":
        out["format"] = "date"
    if out["type"] == "array":
        out["items"] = {}
    desc = clean_text(p.get("description"))
    if desc:
        out["description"] = desc
    default = p.get("default")
    if isinstance(default, (str, int, float, bool)) and default != "":
        out["default"] = default
    return out


def _api(api: Any, tool: dict, meta: dict) -> dict:
    if not isinstance(api, dict) or not as_str(api.get("name")):
        raise ValueError("API entry has no name")
    props: dict = {}
    required: list[str] = []
    for key, is_required in (("required_parameters", True), ("optional_parameters", False)):
        for p in api.get(key) or []:
            if not isinstance(p, dict) or not as_str(p.get("name")):
                continue
            name = as_str(p["name"])
            props[name] = _param_schema(p)
            if is_required and name not in required:
                required.append(name)
    params: dict = {"type": "object", "properties": props}
    if required:
        params["required"] = required
    schema = api.get("schema")
    if isinstance(schema, dict) and ("type" in schema or "properties" in schema):
        returns = clean_schema(schema, max_depth=6, max_nodes=200) or None
    elif api.get("template_response") not in (None, "", {}):
        returns = clean_schema(schema_from_example(api["template_response"]), max_depth=6, max_nodes=200) or None
    else:
        returns = None
    url = as_str(api.get("url"))
    path = urlparse(url).path or None if url else None
    return {
        "original_name": as_str(api["name"]),
        "description": api.get("description"),
        "summary": tool.get("tool_description"),
        "parameters": params,
        "returns": returns,
        "http_method": (as_str(api.get("method")) or "GET").upper(),
        "http_path": path or "/",
        **meta,
    }
