"""Builds the starter corpus files from the service definitions in ``_services.py``.

The data files are the product; this module is their source, so that every
service uses one field vocabulary consistently (the same ``order_id`` schema in
every tool that reads or writes an order) and each format is written the same
way. Regenerate after editing a service:

    python -m agentscaler_dagster.starter_corpus._build

A test rebuilds into a temporary folder and compares bytes with the shipped
files, so the two cannot drift apart.
"""

from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FORMATS = ("openapi-yaml", "openapi-json", "openai", "mcp")
SUFFIX = {
    "openapi-yaml": ".openapi.yaml",
    "openapi-json": ".openapi.json",
    "openai": ".openai.json",
    "mcp": ".mcp.json",
}
READ_METHODS = {"GET"}
# POST operations named with one of these verbs make a new record: answered with 201.
CREATING_VERBS = {
    "create", "book", "add", "register", "place", "submit", "request", "report", "purchase",
    "checkout", "pay", "send",
}


# ---- schema helpers: each returns a fresh JSON Schema dict ---------------------------------


def ID(what: str) -> dict:
    return {"type": "string", "description": f"Unique identifier of the {what}."}


def STR(desc: str, **kw: Any) -> dict:
    return {"type": "string", "description": desc, **kw}


def EMAIL(desc: str) -> dict:
    return {"type": "string", "format": "email", "description": desc}


def INT(desc: str, **kw: Any) -> dict:
    return {"type": "integer", "description": desc, **kw}


def NUM(desc: str, **kw: Any) -> dict:
    return {"type": "number", "description": desc, **kw}


def MONEY(desc: str) -> dict:
    return {"type": "number", "minimum": 0, "description": desc}


def BOOL(desc: str, **kw: Any) -> dict:
    return {"type": "boolean", "description": desc, **kw}


def ENUM(desc: str, values: list[str], **kw: Any) -> dict:
    return {"type": "string", "enum": list(values), "description": desc, **kw}


def DATE(desc: str) -> dict:
    return {"type": "string", "format": "date", "description": desc}


def DATETIME(desc: str) -> dict:
    return {"type": "string", "format": "date-time", "description": desc}


def ARR(items: dict, desc: str, **kw: Any) -> dict:
    return {"type": "array", "items": items, "description": desc, **kw}


def OBJ(desc: str, props: dict, required: list[str] | None = None) -> dict:
    out = {"type": "object", "description": desc, "properties": props}
    if required:
        out["required"] = list(required)
    return out


def REF(entity: str) -> dict:
    """A marker for an entity: ``$ref`` in OpenAPI, inlined in OpenAI and MCP files."""
    return {"$entity": entity}


# ---- the service model ---------------------------------------------------------------------


@dataclass
class Entity:
    name: str
    description: str
    props: dict[str, dict]
    required: list[str]


@dataclass
class Tool:
    name: str
    method: str
    path: str | None
    description: str
    params: dict[str, dict]
    required: list[str]
    returns: dict
    status: int

    @property
    def operation(self) -> str:
        return "read" if self.method in READ_METHODS else "write"


@dataclass
class Service:
    key: str
    fmt: str
    title: str
    provider: str
    categories: list[str]
    description: str
    server: str = ""
    version: str = "1.0.0"
    fields: dict[str, dict] = field(default_factory=dict)
    entities: dict[str, Entity] = field(default_factory=dict)
    tools: list[Tool] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise ValueError(f"service {self.key!r}: unknown format {self.fmt!r}; known: {FORMATS}")

    def field(self, **schemas: dict) -> None:
        self.fields.update(schemas)

    def _lookup(self, name: str, local: dict[str, dict], where: str) -> dict:
        if name in local:
            return copy.deepcopy(local[name])
        if name in self.fields:
            return copy.deepcopy(self.fields[name])
        raise KeyError(f"service {self.key!r}, {where}: field {name!r} is not defined")

    def entity(self, name: str, description: str, props: list[str], required: list[str] | None = None,
               **local: dict) -> None:
        where = f"entity {name}"
        schema_props = {p: self._lookup(p, local, where) for p in props}
        req = list(required) if required is not None else [p for p in props if p.endswith("_id")][:1]
        unknown = [r for r in req if r not in schema_props]
        if unknown:
            raise KeyError(f"service {self.key!r}, {where}: required {unknown} not among its properties")
        self.entities[name] = Entity(name, description, schema_props, req)

    def tool(self, name: str, route: str, description: str, required: tuple | list = (),
             optional: tuple | list = (), returns: Any = None, **local: dict) -> None:
        where = f"tool {name}"
        method, _, path = route.partition(" ")
        if any(t.name == name for t in self.tools):
            raise ValueError(f"service {self.key!r}: duplicate tool name {name!r}")
        if self.fmt.startswith("openapi") and not path:
            raise ValueError(f"service {self.key!r}, {where}: OpenAPI tools need 'METHOD /path'")
        params = {p: self._lookup(p, local, where) for p in [*required, *optional]}
        if returns is None:
            raise ValueError(f"service {self.key!r}, {where}: a return schema is required")
        verb = name.split("_", 1)[0]
        status = 201 if method == "POST" and verb in CREATING_VERBS else 200
        self.tools.append(Tool(name, method, path or None, description, params, list(required),
                               self._returns(returns), status))

    def _returns(self, spec: Any) -> dict:
        if isinstance(spec, str):
            return REF(spec)
        if isinstance(spec, tuple) and spec[0] == "list":
            _, key, entity, desc = spec
            return OBJ(desc, {
                key: ARR(REF(entity), f"The matching {entity} records."),
                "total_count": INT("Number of matching records before pagination.", minimum=0),
            }, [key, "total_count"])
        return copy.deepcopy(spec)


def LIST(key: str, entity: str, desc: str) -> tuple:
    return ("list", key, entity, desc)


# ---- rendering -----------------------------------------------------------------------------


def _render(schema: Any, svc: Service, inline: bool, drop_desc: bool = False) -> Any:
    if isinstance(schema, list):
        return [_render(s, svc, inline) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$entity" in schema:
        name = schema["$entity"]
        if name not in svc.entities:
            raise KeyError(f"service {svc.key!r}: entity {name!r} referenced but not defined")
        if not inline:
            return {"$ref": f"#/components/schemas/{name}"}
        return _entity_schema(svc.entities[name], svc, inline=True)
    out = {}
    for k, v in schema.items():
        if drop_desc and k == "description":
            continue
        if k == "properties":
            out[k] = {pk: _render(pv, svc, inline) for pk, pv in v.items()}
        else:
            out[k] = _render(v, svc, inline)
    return out


def _entity_schema(ent: Entity, svc: Service, inline: bool) -> dict:
    out = {
        "type": "object",
        "description": ent.description,
        "properties": {k: _render(v, svc, inline) for k, v in ent.props.items()},
    }
    if ent.required:
        out["required"] = list(ent.required)
    return out


def _object(params: dict[str, dict], required: list[str], svc: Service, inline: bool) -> dict:
    out: dict = {"type": "object", "properties": {k: _render(v, svc, inline) for k, v in params.items()}}
    req = [r for r in required if r in params]
    if req:
        out["required"] = req
    return out


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def render_openapi(svc: Service) -> dict:
    schemas: dict[str, dict] = {
        name: _entity_schema(ent, svc, inline=False) for name, ent in sorted(svc.entities.items())
    }
    schemas["Error"] = {
        "type": "object",
        "description": "Error returned with every 4xx response.",
        "properties": {
            "code": {"type": "string", "description": "Machine-readable error code."},
            "message": {"type": "string", "description": "Human-readable explanation."},
        },
        "required": ["code", "message"],
    }
    shared_params: dict[str, dict] = {}
    paths: dict[str, dict] = {}
    for t in svc.tools:
        path_names = [seg[1:-1] for seg in t.path.split("/") if seg.startswith("{")]
        missing = [p for p in path_names if p not in t.params]
        if missing:
            raise KeyError(f"service {svc.key!r}, tool {t.name}: path parameters {missing} not declared")
        op: dict = {
            "operationId": t.name,
            "summary": t.name.replace("_", " ").capitalize(),
            "description": t.description,
            "tags": [t.path.strip("/").split("/")[0]],
        }
        parameters = []
        body_params: dict[str, dict] = {}
        for pname, pschema in t.params.items():
            if pname in path_names:
                where = "path"
            elif t.method in ("GET", "DELETE"):
                where = "query"
            else:
                body_params[pname] = pschema
                continue
            if where == "query" and pname in ("limit", "offset"):
                # Pagination is declared once, as real specs do, and referenced.
                shared_params[pname] = {
                    "name": pname, "in": "query", "required": False,
                    "description": pschema["description"],
                    "schema": _render(pschema, svc, inline=False, drop_desc=True),
                }
                parameters.append({"$ref": f"#/components/parameters/{pname}"})
                continue
            parameters.append({
                "name": pname,
                "in": where,
                "required": where == "path" or pname in t.required,
                "description": pschema["description"],
                "schema": _render(pschema, svc, inline=False, drop_desc=True),
            })
        if parameters:
            op["parameters"] = parameters
        if body_params:
            body_schema = _object(body_params, t.required, svc, inline=False)
            if t.status == 201:
                # Creating operations name their request body, as generated SDKs expect.
                ref_name = _camel(t.name) + "Request"
                schemas[ref_name] = {"description": f"Request body of {t.name}.", **body_schema}
                body_schema = {"$ref": f"#/components/schemas/{ref_name}"}
            op["requestBody"] = {
                "required": any(r in body_params for r in t.required),
                "content": {"application/json": {"schema": body_schema}},
            }
        ok_desc = "Created." if t.status == 201 else "Successful response."
        op["responses"] = {
            str(t.status): {
                "description": ok_desc,
                "content": {"application/json": {"schema": _render(t.returns, svc, inline=False)}},
            },
            "400": _error_response("The request is invalid."),
            "404": _error_response("A referenced record does not exist."),
        }
        paths.setdefault(t.path, {})[t.method.lower()] = op
    components: dict = {"schemas": dict(sorted(schemas.items()))}
    if shared_params:
        components["parameters"] = dict(sorted(shared_params.items()))
    components["securitySchemes"] = {"ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": svc.title,
            "version": svc.version,
            "description": svc.description,
            "x-providerName": svc.provider,
            "x-apisguru-categories": list(svc.categories),
        },
        "servers": [{"url": svc.server}],
        "security": [{"ApiKeyAuth": []}],
        "paths": paths,
        "components": components,
    }


def _error_response(desc: str) -> dict:
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def render_openai(svc: Service) -> list[dict]:
    # "returns" and the item-level api_title / provider / categories are not part of the OpenAI format:
    # the corpus loader reads them (what a tool returns feeds the dependency graph).
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": _object(t.params, t.required, svc, inline=True),
                "returns": _render(t.returns, svc, inline=True),
            },
            "api_title": svc.title,
            "provider": svc.provider,
            "categories": list(svc.categories),
        }
        for t in svc.tools
    ]


def render_mcp(svc: Service) -> dict:
    tools = []
    for t in svc.tools:
        verb = t.name.split("_", 1)[0]
        tools.append({
            "name": t.name,
            "title": t.name.replace("_", " ").capitalize(),
            "description": t.description,
            "inputSchema": _object(t.params, t.required, svc, inline=True),
            "outputSchema": _render(t.returns, svc, inline=True),
            "annotations": {
                "readOnlyHint": t.operation == "read",
                "destructiveHint": verb in ("delete", "cancel", "remove"),
                "idempotentHint": t.operation == "read" or verb in ("update", "set", "delete"),
                "openWorldHint": False,
            },
        })
    # The body of a tools/list result; serverInfo really comes with the initialize result, and is
    # carried here so that the file names its server.
    return {"serverInfo": {"name": svc.title, "version": svc.version}, "tools": tools}


def render_text(svc: Service) -> str:
    if svc.fmt == "openapi-yaml":
        return yaml.safe_dump(render_openapi(svc), sort_keys=False, allow_unicode=True, width=100)
    if svc.fmt == "openapi-json":
        doc: Any = render_openapi(svc)
    elif svc.fmt == "openai":
        doc = render_openai(svc)
    else:
        doc = render_mcp(svc)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def file_name(svc: Service) -> str:
    return svc.key + SUFFIX[svc.fmt]


def build(out_dir: Path) -> list[Path]:
    """Write every service's file into ``out_dir``; returns the written paths, sorted."""
    from ._services import SERVICES

    out_dir.mkdir(parents=True, exist_ok=True)
    keys = [s.key for s in SERVICES]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate service keys in {keys}")
    written = []
    for svc in SERVICES:
        path = out_dir / file_name(svc)
        path.write_text(render_text(svc), encoding="utf-8")
        written.append(path)
    return sorted(written)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else Path(__file__).resolve().parent
    paths = build(out)
    print(f"wrote {len(paths)} files to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
