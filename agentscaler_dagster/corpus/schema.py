"""JSON Schema cleaning: from whatever a spec says to the subset function-calling models accept.

What comes out of :func:`clean_schema`:

- only the keys ``type``, ``description``, ``properties``, ``required``, ``items``, ``enum``, ``format``,
  ``default``, ``minimum``, ``maximum``; everything else (``$schema``, ``x-*``, ``examples``, ``title``,
  ``additionalProperties``, ``pattern``, ...) is dropped;
- ``type`` is one JSON Schema type name: source dialects are mapped (``dict`` -> object, ``float`` ->
  number, ``int`` -> integer, ``tuple``/``list`` -> array, ...); a type list such as ``["string", "null"]``
  keeps its first non-null member; an unknown type name becomes ``string``;
- local ``$ref`` (``#/...`` JSON pointers) are inlined; a reference back to a schema that is already being
  inlined on the current path (a cycle) is cut and replaced by ``{"type": "object"}``; a reference that
  does not resolve raises :class:`UnresolvableRef` naming it, so the caller can quarantine the operation;
- ``allOf`` branches are merged (properties and required lists united); ``oneOf``/``anyOf`` keep their
  first non-null branch;
- ``required`` lists only properties that exist; ``enum`` keeps JSON scalars and is dropped beyond
  ``MAX_ENUM`` values (a cut enum would reject valid values); an array always has ``items`` (``{}`` when
  the source gives none);
- nesting is capped at ``max_depth`` levels and the whole schema at ``max_nodes`` nodes; past either cap a
  subschema becomes a stub that keeps its type and description. The walk is recursive but never deeper
  than the cap, so a 1,000-level schema cannot raise RecursionError.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

MAX_ENUM = 256
MAX_DESCRIPTION = 512

_TYPE_MAP = {
    "object": "object", "dict": "object", "map": "object", "hash": "object", "hashmap": "object",
    "struct": "object", "record": "object",
    "array": "array", "list": "array", "tuple": "array", "set": "array", "sequence": "array",
    "string": "string", "str": "string", "text": "string", "char": "string", "date": "string",
    "datetime": "string", "time": "string", "uuid": "string", "file": "string", "binary": "string",
    "integer": "integer", "int": "integer", "long": "integer", "int32": "integer", "int64": "integer",
    "number": "number", "float": "number", "double": "number", "decimal": "number",
    "boolean": "boolean", "bool": "boolean",
    "null": "null", "none": "null", "nonetype": "null",
}
_SCALAR_KEYS = ("minimum", "maximum")
_WS = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]{0,200}>")
_MD_LINK = re.compile(r"\[([^\]]{0,200})\]\([^)]{0,500}\)")


class UnresolvableRef(Exception):
    """A ``$ref`` that points nowhere (or outside the document)."""

    def __init__(self, ref: str, why: str = "does not resolve"):
        super().__init__(f"unresolvable $ref {ref!r}: {why}")
        self.ref = ref


class UnusableSchema(ValueError):
    """A parameter schema that cannot become a JSON Schema object."""


class Resolver:
    """Resolves local JSON-pointer references (``#/a/b``) inside one document."""

    def __init__(self, root: Any):
        self.root = root
        self._memo: dict[str, Any] = {}
        self.cleaned: dict[tuple, tuple[dict, int]] = {}  # see _clean

    def resolve(self, ref: str) -> Any:
        hit = self._memo.get(ref)
        if hit is not None:
            return hit
        if not ref.startswith("#"):
            raise UnresolvableRef(ref, "only local references (#/...) are supported")
        node = self.root
        pointer = ref[1:]
        if pointer and not pointer.startswith("/"):
            raise UnresolvableRef(ref, "not a JSON pointer")
        for raw in pointer.split("/")[1:] if pointer else []:
            part = _unescape(raw)
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise UnresolvableRef(ref, f"no {part!r}")
        self._memo[ref] = node
        return node

    def deref(self, node: Any, limit: int = 64) -> Any:
        """Follow a chain of ``$ref`` objects (not schemas: parameters, responses, path items)."""
        seen = 0
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            seen += 1
            if seen > limit:
                raise UnresolvableRef(node["$ref"], "reference chain too long or cyclic")
            node = self.resolve(node["$ref"])
        return node


def _unescape(part: str) -> str:
    if "%" in part:
        from urllib.parse import unquote

        part = unquote(part)
    return part.replace("~1", "/").replace("~0", "~")


def clean_text(text: Any, limit: int = MAX_DESCRIPTION) -> str | None:
    """Plain text: HTML tags and Markdown link targets stripped, whitespace collapsed, length capped."""
    if not isinstance(text, str):
        return None
    if "<" in text or "](" in text or "&" in text:
        text = html.unescape(_TAG.sub(" ", _MD_LINK.sub(r"\1", text)))
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 3].rsplit(" ", 1)[0] + "..."
    return text or None


def map_type(value: Any) -> str | None:
    """One JSON Schema type name for a source type (string or list); None when it says nothing."""
    if isinstance(value, list):
        names = [map_type(v) for v in value]
        names = [n for n in names if n and n != "null"]
        return names[0] if names else None
    if not isinstance(value, str):
        return None
    hit = _TYPE_MAP.get(value)
    if hit is not None:
        return hit
    key = value.strip().lower()
    if not key or key in ("any", "mixed", "unknown"):
        return None
    return _TYPE_MAP.get(key, _TYPE_MAP.get(key.split("[")[0].split("(")[0].strip(), "string"))


class _Walk:
    __slots__ = ("resolver", "max_depth", "max_nodes", "nodes", "cut_cycles", "truncated")

    def __init__(self, resolver: Resolver | None, max_depth: int, max_nodes: int):
        self.resolver = resolver
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.nodes = 0
        self.cut_cycles = 0
        self.truncated = 0


def clean_schema(
    node: Any,
    resolver: Resolver | None = None,
    *,
    max_depth: int = 8,
    max_nodes: int = 600,
    walk: _Walk | None = None,
    depth: int = 0,
) -> dict:
    """Cleaned copy of one (sub)schema; see the module docstring for the rules."""
    w = walk or _Walk(resolver, max_depth, max_nodes)
    return _clean(node, depth, w, ())


def new_walk(resolver: Resolver | None, *, max_depth: int = 8, max_nodes: int = 600) -> _Walk:
    """A shared budget, so that several schemas of one operation are capped together."""
    return _Walk(resolver, max_depth, max_nodes)


def _stub(node: dict, desc: str | None) -> dict:
    t = map_type(node.get("type"))
    if t is None:
        t = "object" if "properties" in node else "array" if "items" in node else None
    out: dict = {}
    if t:
        out["type"] = t
    if t == "array":
        out["items"] = {}
    if desc:
        out["description"] = desc
    return out


def _clean(node: Any, depth: int, w: _Walk, stack: tuple) -> dict:
    w.nodes += 1
    outer_desc = None
    chain: list[str] = []
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str):
            node = {k: v for k, v in node.items() if k != "$ref"}
            break
        if outer_desc is None:
            outer_desc = clean_text(node.get("description"))
        if ref in stack or ref in chain:
            w.cut_cycles += 1
            out = {"type": "object"}
            if outer_desc:
                out["description"] = outer_desc
            return out
        if w.resolver is None:
            raise UnresolvableRef(ref, "no document to resolve against")
        chain.append(ref)
        if len(chain) > 64:
            raise UnresolvableRef(ref, "reference chain too long")
        node = w.resolver.resolve(ref)
    if not isinstance(node, dict):
        return {}
    if not chain:
        return _body(node, depth, w, stack, clean_text(node.get("description")))
    # A referenced schema cleaned without a cycle cut or a cap hit does not depend on where it was
    # reached from, so it is cleaned once per depth and shared (specs reuse components thousands of times).
    memo = w.resolver.cleaned
    key = (chain[-1], depth, w.max_depth)
    hit = memo.get(key)
    if hit is not None and w.nodes + hit[1] <= w.max_nodes:
        w.nodes += hit[1]
        out = dict(hit[0])
    else:
        nodes, cuts, truncs = w.nodes, w.cut_cycles, w.truncated
        out = _body(node, depth, w, stack + tuple(chain), clean_text(node.get("description")))
        if w.cut_cycles == cuts and w.truncated == truncs:
            memo[key] = (out, w.nodes - nodes)
            out = dict(out)
    if outer_desc:
        out["description"] = outer_desc
    return out


def _body(node: dict, depth: int, w: _Walk, stack: tuple, desc: str | None) -> dict:
    if depth >= w.max_depth or w.nodes > w.max_nodes:
        w.truncated += 1
        return _stub(node, desc)

    out: dict = {}
    for key in ("allOf", "oneOf", "anyOf"):
        branches = node.get(key)
        if not isinstance(branches, list) or not branches:
            continue
        if key == "allOf":
            for branch in branches:
                _merge(out, _clean(branch, depth + 1, w, stack))
        else:
            picked = None
            for branch in branches:
                b = w.resolver.deref(branch) if (w.resolver and isinstance(branch, dict) and "$ref" in branch) else branch
                if isinstance(b, dict) and map_type(b.get("type")) == "null" and "properties" not in b:
                    continue
                picked = branch
                break
            if picked is not None:
                _merge(out, _clean(picked, depth + 1, w, stack))
        break  # one combinator per node is what real specs use; more is rare enough to ignore

    t = map_type(node.get("type"))
    props = node.get("properties")
    if t is None and "type" not in out:
        if isinstance(props, dict):
            t = "object"
        elif "items" in node:
            t = "array"
        elif isinstance(node.get("enum"), list) and node["enum"]:
            t = _enum_type(node["enum"])
    if t == "null":
        t = None
    if t:
        out["type"] = t
    if desc:
        out["description"] = desc

    if isinstance(props, dict) and props and out.get("type", "object") == "object":
        cleaned = out.setdefault("properties", {})
        for name, sub in props.items():
            if not isinstance(name, str) or not name:
                continue
            cleaned[name] = _clean(sub, depth + 1, w, stack)
        out["type"] = "object"
    req = node.get("required")
    if isinstance(req, list) and isinstance(out.get("properties"), dict):
        merged = list(out.get("required", []))
        for r in req:
            if isinstance(r, str) and r in out["properties"] and r not in merged:
                merged.append(r)
        if merged:
            out["required"] = merged
    if out.get("type") == "array":
        items = node.get("items")
        if isinstance(items, list):  # tuple-form items: the first describes the rest well enough
            items = items[0] if items else {}
        if isinstance(items, dict) and items:
            out["items"] = _clean(items, depth + 1, w, stack)
        elif "items" not in out:
            out["items"] = {}
    enum = node.get("enum")
    if isinstance(enum, list):
        vals = [v for v in enum if isinstance(v, (str, int, float, bool)) and _finite(v)]
        if vals and len(vals) <= MAX_ENUM:
            seen: list = []
            for v in vals:
                if v not in seen:
                    seen.append(v)
            out["enum"] = seen
            if "type" not in out:
                out["type"] = _enum_type(seen)
    fmt = node.get("format")
    if isinstance(fmt, str) and fmt:
        out["format"] = fmt[:64]
    default = node.get("default")
    if isinstance(default, (str, int, float, bool)) and _finite(default):
        if not (isinstance(default, str) and len(default) > 200):
            out["default"] = default
    for key in _SCALAR_KEYS:
        v = node.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and _finite(v):
            out[key] = v
    return out


def _finite(v: Any) -> bool:
    # NaN / Infinity parse from JSON but cannot be written back as JSON
    return not isinstance(v, float) or math.isfinite(v)


def _enum_type(values: list) -> str:
    kinds = {type(v) for v in values if v is not None}
    if kinds == {bool}:
        return "boolean"
    if kinds == {int}:
        return "integer"
    if kinds and kinds <= {int, float}:
        return "number"
    return "string"


def _merge(into: dict, other: dict) -> None:
    for key, value in other.items():
        if key == "properties":
            into.setdefault("properties", {}).update(value)
        elif key == "required":
            req = into.setdefault("required", [])
            req.extend(r for r in value if r not in req)
        elif key not in into:
            into[key] = value


def clean_parameters(node: Any, resolver: Resolver | None = None, **caps: int) -> dict:
    """A tool's argument schema: always ``{"type": "object", "properties": {...}}`` at the top.

    Raises UnusableSchema when the source is not an object schema (e.g. a string or an array type).
    """
    if node is None:
        return {"type": "object", "properties": {}}
    if not isinstance(node, dict):
        raise UnusableSchema(f"parameters is a {type(node).__name__}, not a JSON Schema object")
    out = clean_schema(node, resolver, **caps)
    if out.get("type", "object") != "object":
        raise UnusableSchema(f"parameters has type {out.get('type')!r}, not 'object'")
    out["type"] = "object"
    out.setdefault("properties", {})
    return out


def schema_from_example(value: Any, depth: int = 0, max_depth: int = 6) -> dict:
    """A schema from an example response (ToolBench ``template_response``: values are type names)."""
    if depth >= max_depth:
        return {"type": "object"} if isinstance(value, dict) else {}
    if isinstance(value, dict):
        props = {}
        for k, v in list(value.items())[:100]:
            if isinstance(k, str) and k:
                props[k] = schema_from_example(v, depth + 1, max_depth)
        return {"type": "object", "properties": props}
    if isinstance(value, list):
        return {"type": "array", "items": schema_from_example(value[0], depth + 1, max_depth) if value else {}}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        t = _TYPE_MAP.get(value.strip().lower())
        if t and t != "null":
            return {"type": t} if t != "array" else {"type": "array", "items": {}}
        return {"type": "string"}
    return {}
