"""From a file's bytes to a parsed document and its format.

Decoding: a BOM picks UTF-8/16/32; otherwise the bytes must be UTF-8 (a file that is not is quarantined
with the offset of the first bad byte rather than guessed at). Parsing: ``.yaml``/``.yml`` with YAML
(libyaml's CSafeLoader when present); ``.json`` as JSON, falling back to JSON lines; other names try JSON,
JSON lines, then YAML. A JSON-lines file keeps its good lines and reports the bad ones.

Detection looks at the structure, not the file name (see :func:`detect_format`).
"""

from __future__ import annotations

import codecs
import contextlib
import json
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml

try:
    _YAML_LOADER = yaml.CSafeLoader
except AttributeError:  # libyaml missing: the pure-Python loader is slower but equivalent
    _YAML_LOADER = yaml.SafeLoader

FORMATS = ("openapi3", "swagger2", "openai", "mcp", "toolbench", "bfcl")
# what --format accepts; "openapi" lets the document's own version field pick 3.x or 2.0
FORCE_CHOICES = ("openapi",) + FORMATS
MAX_BYTES = 64 * 1024 * 1024
# json's C decoder recurses once per nesting level; this allows very deep documents while staying far
# below what an 8 MiB C stack holds (measured: 5,900 levels parse in the main thread and in a thread)
_PARSE_RECURSION = 5000
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


class FileProblem(Exception):
    """The file as a whole cannot be read; the message is the quarantine reason."""


@dataclass
class Parsed:
    doc: Any
    syntax: str  # json | jsonl | yaml
    bad_lines: list[tuple[int, str]] = field(default_factory=list)


@contextlib.contextmanager
def _deep_parse():
    old = sys.getrecursionlimit()
    if old < _PARSE_RECURSION:
        sys.setrecursionlimit(_PARSE_RECURSION)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def decode(data: bytes) -> str:
    if not data.strip():
        raise FileProblem("empty file")
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(enc)
            except UnicodeDecodeError as exc:
                raise FileProblem(f"not valid {enc} after its byte-order mark: {exc.reason} at byte {exc.start}") from None
    if b"\x00" in data[:8192]:
        raise FileProblem("binary file (NUL bytes), not a text spec")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1].hex()
        raise FileProblem(f"not UTF-8: byte 0x{bad} at offset {exc.start}") from None


def _json(text: str) -> Any:
    with _deep_parse():
        return json.loads(text)


def _jsonl(text: str) -> Parsed | None:
    docs: list = []
    bad: list[tuple[int, str]] = []
    lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    if len(lines) < 2 and not text.lstrip().startswith("{"):
        return None
    for lineno, line in lines:
        try:
            with _deep_parse():
                docs.append(json.loads(line))
        except (ValueError, RecursionError) as exc:
            bad.append((lineno, f"invalid JSON: {_short(exc)}"))
    if not docs or len(bad) > len(docs):
        return None
    return Parsed(docs, "jsonl", bad)


def _yaml(text: str) -> Any:
    with _deep_parse():
        return yaml.load(text, Loader=_YAML_LOADER)


def _short(exc: BaseException) -> str:
    msg = str(exc).replace("\n", " ")
    return msg[:200]


def parse(data: bytes, name: str) -> Parsed:
    """Parse one file's bytes; raises FileProblem with the reason when nothing usable comes out."""
    if len(data) > MAX_BYTES:
        raise FileProblem(f"file too large ({len(data)} bytes > {MAX_BYTES})")
    text = decode(data)
    lower = name.lower()
    if lower.endswith((".yaml", ".yml")):
        try:
            return Parsed(_yaml(text), "yaml")
        except RecursionError:
            raise FileProblem("YAML nested too deeply to parse") from None
        except yaml.YAMLError as exc:
            raise FileProblem(f"invalid YAML: {_short(exc)}") from None
    json_error = None
    try:
        return Parsed(_json(text), "json")
    except RecursionError:
        raise FileProblem(f"JSON nested deeper than {_PARSE_RECURSION} levels") from None
    except ValueError as exc:
        json_error = exc
    lines = _jsonl(text)
    if lines is not None:
        return lines
    if lower.endswith((".json", ".jsonl", ".ndjson")):
        raise FileProblem(f"invalid JSON: {_short(json_error)}")
    try:
        doc = _yaml(text)
    except (yaml.YAMLError, RecursionError) as exc:
        raise FileProblem(f"neither JSON ({_short(json_error)}) nor YAML ({_short(exc)})") from None
    return Parsed(doc, "yaml")


def _is_openai_item(x: Any) -> bool:
    if not isinstance(x, dict):
        return False
    if x.get("type") == "function" and isinstance(x.get("function"), dict):
        return True
    return isinstance(x.get("name"), str) and ("parameters" in x or "description" in x) and "api_list" not in x


def _is_bfcl_item(x: Any) -> bool:
    if not isinstance(x, dict) or not isinstance(x.get("name"), str) or "function" in x:
        return False
    params = x.get("parameters")
    return "response" in x or (isinstance(params, dict) and params.get("type") == "dict")


def _is_mcp_tool(x: Any) -> bool:
    return isinstance(x, dict) and isinstance(x.get("name"), str) and ("inputSchema" in x or "outputSchema" in x)


def mcp_tools(doc: Any) -> list | None:
    """The tools list of an MCP tools/list result (bare or inside a JSON-RPC response)."""
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("result"), dict):
        doc = doc["result"]
    tools = doc.get("tools")
    if isinstance(tools, list) and (not tools or any(_is_mcp_tool(t) for t in tools)):
        return tools
    return None


def openai_items(doc: Any) -> list | None:
    """The tool objects of an OpenAI tools file: a list, one object, or {"tools"|"functions": [...]}."""
    if isinstance(doc, list):
        return doc if doc and any(_is_openai_item(x) for x in doc) else None
    if isinstance(doc, dict):
        for key in ("tools", "functions"):
            if isinstance(doc.get(key), list) and any(_is_openai_item(x) for x in doc[key]):
                return doc[key]
        if _is_openai_item(doc):
            return [doc]
    return None


def detect_format(doc: Any) -> str | None:
    """The format of a parsed document, or None when it is none we know.

    openapi3: ``openapi: 3.x``; swagger2: ``swagger: 2.x``; mcp: a tools/list result (tools carry
    ``inputSchema``); toolbench: objects with ``api_list``; bfcl: function docs with ``"type": "dict"``
    parameters or a ``response`` schema; openai: ``{"type": "function", "function": ...}`` or bare
    ``{name, description, parameters}`` objects.
    """
    if isinstance(doc, dict):
        if isinstance(doc.get("openapi"), str) and doc["openapi"].startswith("3"):
            return "openapi3"
        if str(doc.get("swagger", "")).startswith("2"):
            return "swagger2"
        if mcp_tools(doc) is not None:
            return "mcp"
        if isinstance(doc.get("api_list"), list):
            return "toolbench"
        if _is_bfcl_item(doc):
            return "bfcl"
        if openai_items(doc) is not None:
            return "openai"
        return None
    if isinstance(doc, list) and doc:
        dicts = [x for x in doc if isinstance(x, dict)]
        if not dicts:
            return None
        if all(isinstance(x.get("api_list"), list) for x in dicts):
            return "toolbench"
        if any(x.get("type") == "function" and "function" in x for x in dicts):
            return "openai"
        if sum(_is_bfcl_item(x) for x in dicts) * 2 >= len(dicts):
            return "bfcl"
        if openai_items(doc) is not None:
            return "openai"
    return None
