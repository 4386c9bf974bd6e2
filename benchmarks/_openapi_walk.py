"""A tiny OpenAPI 3 operation walker, for the domain-discovery benchmark only.

It turns each operation of a spec into a ToolSpec (parameters + JSON request-body fields as the
argument schema) so the benchmark can run before / without the corpus stage. The corpus stage's
ingest is the real reader; this one is deliberately minimal.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from agentscaler_dagster.contracts import HttpBinding, ToolSource, ToolSpec

_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _resolve(spec: dict, node, depth: int = 0):
    if isinstance(node, dict) and "$ref" in node and depth < 8:
        ref = node["$ref"]
        if isinstance(ref, str) and ref.startswith("#/"):
            cur = spec
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(cur, dict) or part not in cur:
                    return {}
                cur = cur[part]
            return _resolve(spec, cur, depth + 1)
        return {}
    return node if isinstance(node, dict) else {}


def _shallow_schema(spec: dict, schema: dict, depth: int = 0) -> dict:
    schema = _resolve(spec, schema)
    out = {k: schema[k] for k in ("type", "description", "enum", "format") if k in schema}
    if "allOf" in schema and "properties" not in schema:
        props, req = {}, []
        for part in schema["allOf"]:
            part = _resolve(spec, part)
            props.update(part.get("properties") or {})
            req += part.get("required") or []
        schema = {**schema, "properties": props, "required": req}
    if depth < 1 and isinstance(schema.get("properties"), dict):
        out["type"] = "object"
        out["properties"] = {k: _shallow_schema(spec, v, depth + 1) for k, v in schema["properties"].items()}
        if schema.get("required"):
            out["required"] = list(schema["required"])
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        out["items"] = _shallow_schema(spec, schema["items"], depth + 1)
    return out


def walk_spec(spec: dict, file: str, category: str | None = None) -> list[ToolSpec]:
    info = spec.get("info") or {}
    title = info.get("title")
    tools = []
    for path, item in sorted((spec.get("paths") or {}).items()):
        item = _resolve(spec, item)
        shared = item.get("parameters") or []
        for method in _METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            props, required = {}, []
            for p in [*shared, *(op.get("parameters") or [])]:
                p = _resolve(spec, p)
                if not p.get("name") or p.get("in") in ("header", "cookie"):
                    continue
                props[p["name"]] = _shallow_schema(spec, p.get("schema") or {})
                if p.get("description"):
                    props[p["name"]]["description"] = p["description"]
                if p.get("required"):
                    required.append(p["name"])
            body = _resolve(spec, op.get("requestBody") or {})
            content = body.get("content") or {}
            media = next((content[m] for m in sorted(content) if "json" in m), None) or \
                next((content[m] for m in sorted(content)), None)
            if isinstance(media, dict) and media.get("schema"):
                bs = _shallow_schema(spec, media["schema"])
                if isinstance(bs.get("properties"), dict):
                    for k, v in bs["properties"].items():
                        props.setdefault(k, v)
                    required += [r for r in bs.get("required") or [] if r in props]
                else:
                    props["body"] = bs
            original = op.get("operationId") or f"{method}_{path}"
            name = re.sub(r"[^A-Za-z0-9_]", "_", original).strip("_")[:64] or "op"
            params = {"type": "object", "properties": props}
            if required:
                params["required"] = sorted(set(required))
            tid = hashlib.sha256(f"{file}\x00{method}\x00{path}".encode()).hexdigest()[:16]
            tools.append(ToolSpec(
                tool_id=tid, name=name,
                description=str(op.get("summary") or op.get("description") or "")[:500],
                parameters=params, operation="read" if method in ("get", "head", "options") else "write",
                source=ToolSource(format="openapi3", file=file, api_title=title,
                                  categories=[category] if category else []),
                http=HttpBinding(method=method.upper(), path=path),
            ))
    return tools


def load_subset(root: Path) -> list[ToolSpec]:
    manifest = json.loads((root / "MANIFEST.json").read_text())
    tools = []
    for entry in sorted(manifest, key=lambda e: e["file"]):
        spec = json.loads((root / entry["file"]).read_text())
        tools += walk_spec(spec, entry["file"], entry.get("category"))
    return tools
