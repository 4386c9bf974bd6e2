"""OpenAPI 3.0/3.1 and Swagger 2.0: one tool per operation.

Arguments: path, query and header parameters and the request body are merged into one object schema.
An object body contributes its properties directly (a name already taken gets a ``body_`` prefix); any
other body becomes one ``body`` argument. Cookie parameters, transport headers (Authorization,
Accept*, Content-*, User-Agent, If-*, X-Amz-*, any header naming a key, token, secret, password or
auth) and credential query parameters (api_key, access_token, ...) are left out: they are how a call
travels and who makes it, not what it asks. On googleapis.com specs, Google's standard system parameters (``alt``, ``fields``,
``prettyPrint``, ``quotaUser``, ...) are left out for the same reason.

Result: the schema of the first 2xx response (in code order) that has one. Name: ``operationId``, else
``<method> <path>``. Provider: ``info.x-providerName``, else the host of the first server (``host`` in
Swagger 2.0). Categories: ``info.x-apisguru-categories``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from agentscaler_dagster.corpus.loaders import FileContext, LoadResult, as_str, as_str_list
from agentscaler_dagster.corpus.schema import Resolver, clean_schema, clean_text, new_walk

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PARAM_CAPS = {"max_depth": 8, "max_nodes": 600}
RETURN_CAPS = {"max_depth": 6, "max_nodes": 200}
_TRANSPORT_HEADER = re.compile(
    r"^(authorization|proxy-authorization|accept(-[a-z-]+)?|content-(type|length|encoding|md5)|user-agent|"
    r"host|cookie|connection|cache-control|if-(match|none-match|modified-since|unmodified-since)|"
    r"x-amz-[a-z0-9-]+|x-rapidapi-[a-z-]+|x-request-id)$"
    r"|api[-_]?key|token|secret|password|auth",
    re.IGNORECASE,
)
# credentials passed as query parameters
_CREDENTIAL_QUERY = re.compile(r"^(api[-_]?key|apikey|access[-_]?token|auth[-_]?token|client[-_]?secret)$", re.IGNORECASE)
_GOOGLE_SYSTEM_PARAMS = frozenset(
    {"$.xgafv", "access_token", "alt", "callback", "fields", "key", "oauth_token", "prettyPrint",
     "quotaUser", "upload_protocol", "uploadType", "userIp"}
)
_PATH_WORDS = re.compile(r"[^A-Za-z0-9]+")
_SWAGGER_SCHEMA_KEYS = ("type", "format", "items", "enum", "default", "minimum", "maximum", "description")
_MEDIA_PREFERENCE = ("application/json", "json", "application/x-www-form-urlencoded", "multipart/form-data")


def _host(url: Any) -> str | None:
    if not isinstance(url, str) or "//" not in url:
        return None
    host = urlparse(url).hostname
    return host or None


def _media_schema(content: Any) -> Any:
    if not isinstance(content, dict) or not content:
        return None
    keys = [k for k in content if isinstance(k, str)]
    for pref in _MEDIA_PREFERENCE:
        for k in keys:
            if (k == pref or (pref == "json" and "json" in k)) and isinstance(content[k], dict):
                return content[k].get("schema")
    first = content[keys[0]] if keys else None
    return first.get("schema") if isinstance(first, dict) else None


def load(doc: dict, ctx: FileContext) -> LoadResult:
    result = LoadResult()
    swagger = str(doc.get("swagger", "")).startswith("2")
    info = doc.get("info") if isinstance(doc.get("info"), dict) else {}
    title = as_str(info.get("title")) or ctx.stem
    provider = as_str(info.get("x-providerName"))
    if provider is None:
        if swagger:
            provider = as_str(doc.get("host"))
        else:
            servers = doc.get("servers")
            if isinstance(servers, list) and servers and isinstance(servers[0], dict):
                provider = _host(servers[0].get("url"))
    categories = as_str_list(info.get("x-apisguru-categories"))
    meta = {"api_title": title, "provider": provider, "categories": categories}
    google = bool(provider and provider.endswith("googleapis.com"))

    resolver = Resolver(doc)
    paths = doc.get("paths")
    if not isinstance(paths, dict):
        return result
    for path, item in paths.items():
        path = str(path)
        try:
            item = resolver.deref(item)
        except Exception as exc:
            result.quarantine(f"* {path}", str(exc))
            continue
        if not isinstance(item, dict):
            result.quarantine(f"* {path}", "path item is not an object")
            continue
        shared = item.get("parameters") if isinstance(item.get("parameters"), list) else []
        for method, op in item.items():
            if not isinstance(method, str) or method.lower() not in HTTP_METHODS:
                continue
            label = f"{method.upper()} {path}"
            if not isinstance(op, dict):
                result.quarantine(label, "operation is not an object")
                continue
            if isinstance(op.get("operationId"), str):
                label += f" ({op['operationId']})"
            result.attempt(
                label,
                lambda op=op, method=method: _operation(op, method.lower(), path, shared, resolver, swagger, google, meta),
            )
    return result


def _operation(op: dict, method: str, path: str, shared: list, resolver: Resolver, swagger: bool,
               google: bool, meta: dict) -> dict:
    walk = new_walk(resolver, **PARAM_CAPS)
    merged: dict[tuple, dict] = {}
    own = op.get("parameters") if isinstance(op.get("parameters"), list) else []
    for raw in list(shared) + list(own):  # operation-level parameters override path-level ones
        p = resolver.deref(raw)
        if isinstance(p, dict) and isinstance(p.get("name"), str):
            merged[(p["name"], p.get("in"))] = p
    properties: dict[str, dict] = {}
    required: list[str] = []
    body_params: list[dict] = []
    for (name, where), p in merged.items():
        if where == "body":
            body_params.append(p)
            continue
        if where == "cookie" or (where == "header" and _TRANSPORT_HEADER.search(name)):
            continue
        if where == "query" and _CREDENTIAL_QUERY.match(name):
            continue
        if google and where == "query" and name in _GOOGLE_SYSTEM_PARAMS:
            continue
        if swagger and "schema" not in p:
            raw_schema = {k: p[k] for k in _SWAGGER_SCHEMA_KEYS if k in p}
            if raw_schema.get("type") == "file":
                raw_schema = {"type": "string", "format": "binary", **{k: v for k, v in raw_schema.items() if k != "type"}}
        else:
            raw_schema = p.get("schema")
            if raw_schema is None:
                raw_schema = _media_schema(p.get("content")) or {}
        sch = clean_schema(raw_schema, walk=walk, depth=1)
        desc = clean_text(p.get("description"))
        if desc:
            sch["description"] = desc
        if "type" not in sch and "properties" not in sch:
            sch["type"] = "string"  # a parameter on the wire is text unless the spec says otherwise
        key = name if name not in properties else f"{where}_{name}"
        properties[key] = sch
        if p.get("required") is True or where == "path":
            required.append(key)

    body_schema, body_required, body_desc = None, False, None
    if swagger and body_params:
        bp = body_params[0]
        body_schema, body_required, body_desc = bp.get("schema"), bp.get("required") is True, bp.get("description")
    elif not swagger and op.get("requestBody") is not None:
        rb = resolver.deref(op["requestBody"])
        if isinstance(rb, dict):
            body_schema = _media_schema(rb.get("content"))
            body_required, body_desc = rb.get("required") is True, rb.get("description")
    if body_schema is not None:
        body = clean_schema(body_schema, walk=walk, depth=1)
        if body.get("type") == "object" and body.get("properties"):
            body_req = set(body.get("required") or [])
            for name, sch in body["properties"].items():
                key = name if name not in properties else f"body_{name}"
                properties[key] = sch
                if body_required and name in body_req:
                    required.append(key)
        elif body:
            desc = clean_text(body_desc)
            if desc and "description" not in body:
                body["description"] = desc
            key = "body" if "body" not in properties else "request_body"
            properties[key] = body
            if body_required:
                required.append(key)

    parameters: dict = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = list(dict.fromkeys(required))
    op_id = as_str(op.get("operationId"))
    return {
        "original_name": op_id or f"{method} {path}",
        "name_hint": op_id or f"{method}_{_PATH_WORDS.sub('_', path).strip('_')}",
        "description": op.get("description"),
        "summary": op.get("summary"),
        "parameters": parameters,
        "returns": _returns(op, resolver, swagger),
        "http_method": method.upper(),
        "http_path": path,
        **meta,
    }


def _returns(op: dict, resolver: Resolver, swagger: bool) -> dict | None:
    responses = resolver.deref(op.get("responses"))
    if not isinstance(responses, dict):
        return None
    for code in sorted((k for k in responses if str(k).startswith("2")), key=str):
        resp = resolver.deref(responses[code])
        if not isinstance(resp, dict):
            continue
        schema = resp.get("schema") if swagger else _media_schema(resp.get("content"))
        if schema is not None:
            out = clean_schema(schema, resolver, **RETURN_CAPS)
            return out or None
    return None
