"""Normalisation of one loaded operation: name, description, read/write class, identity.

Names
    A tool name must match ``^[a-zA-Z_][a-zA-Z0-9_]{0,63}$``. Every run of other characters becomes ``_``,
    leading/trailing ``_`` are stripped, a leading digit gets a ``_`` prefix, and the result is cut to 64
    characters; an operation without an operationId is named ``<method>_<path>``. The name as the source
    wrote it is kept in ``source.original_name``. Collisions across the corpus are resolved later, over the
    union (see ``quality.assign_unique_names``).

Descriptions
    HTML tags and Markdown link targets are stripped, whitespace collapsed, the text cut at 1,024
    characters. A description of fewer than 3 words falls back to the summary (OpenAPI ``summary``, the
    ToolBench tool description); when neither has 3 words, one is composed (never dropped, see
    :func:`compose_description`): the summary or name words, where the operation lives (method, path,
    API title) and its parameter names. The source's own text is kept in ``original_description``
    whenever the description differs from it, and ``description_origin`` says where the text came from
    (``source``, ``summary`` or ``composed``).

Read / write classification (first rule that applies wins)
    1. MCP annotations: ``readOnlyHint: true`` -> read; ``readOnlyHint: false`` or
       ``destructiveHint: true`` -> write.
    2. HTTP method: GET, HEAD, OPTIONS, TRACE -> read. POST, PUT, PATCH, DELETE -> write, unless the first
       verb found in the name is a read verb (``POST /search`` named ``searchItems`` reads).
    3. No HTTP method: the first verb found in the name's words decides; without one, the first verb in
       the description's first sentence (BFCL: the text after "Tool description:").
    4. Nothing found: read (a tool that changes nothing is the safe assumption for a simulator).
    Read verbs: get, list, search, find, fetch, check, view, read, query, lookup, count, calculate, and
    close synonyms (retrieve, describe, show, display, compute, convert, estimate, ...). Write verbs:
    create, add, update, set, delete, remove, cancel, book, send, post, transfer, buy, sell, place,
    close, modify, and close synonyms (insert, edit, put, patch, upload, submit, reset, move, ...).
    "Words" are the name split at ``_ . - /`` and camelCase boundaries, lower-cased.
"""

from __future__ import annotations

import hashlib
import html
import re
from typing import Any

from agentscaler_dagster.contracts import canonical_json, content_hash

READ_VERBS = frozenset(
    "get list search find fetch check view read query lookup count calculate retrieve describe show "
    "display compute convert estimate browse lookup locate inspect preview download export verify "
    "validate compare explain summarize summarise translate predict recommend detect analyze analyse "
    "sum ls cat pwd head tail grep stat du wc diff".split()
)
WRITE_VERBS = frozenset(
    "create add update set delete remove cancel book send post transfer buy sell place close modify "
    "insert edit put patch upload submit register reset assign unassign approve reject enable disable "
    "start stop restart move rename write save reserve pay purchase publish unpublish archive "
    "unarchive mark toggle lock unlock attach detach revoke grant invite subscribe unsubscribe import "
    "replace change mkdir touch rm mv cp cd echo apply accept decline confirm "
    "activate deactivate suspend resume terminate deploy install uninstall follow unfollow like unlike "
    "share tag untag schedule reschedule refund charge deposit withdraw order clear empty append "
    "increment decrement fill release block unblock login logout authenticate "
    "authorize destroy purge restore copy duplicate merge split link unlink fund adjust mention contact "
    "notify press turn".split()
)
_MAX_NAME = 64
_NAME_BAD = re.compile(r"[^A-Za-z0-9_]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+")
_TAG = re.compile(r"<[^>]{0,200}>")
_MD_LINK = re.compile(r"\[([^\]]{0,200})\]\([^)]{0,500}\)")
_WS = re.compile(r"\s+")
_WORD = re.compile(r"[A-Za-z0-9]+")
MAX_DESCRIPTION = 1024
MIN_WORDS = 3


def valid_name(raw: str) -> str:
    """A function name that matches ``^[a-zA-Z_][a-zA-Z0-9_]{0,63}$``."""
    name = _NAME_BAD.sub("_", raw or "").strip("_")
    if not name:
        name = "tool"
    if name[0].isdigit():
        name = "_" + name
    return name[:_MAX_NAME].rstrip("_") or "tool"


def with_suffix(base: str, suffix: str) -> str:
    """``base_suffix`` cut so that the whole stays a valid 64-character name."""
    suffix = _NAME_BAD.sub("_", suffix).strip("_") or "x"
    room = _MAX_NAME - len(suffix) - 1
    return f"{base[:room].rstrip('_')}_{suffix}"


def name_key(name: str) -> str:
    """What near-duplicate detection compares: letters and digits, lower-cased."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def words(name: str) -> list[str]:
    parts = []
    for chunk in _WORD_SPLIT.split(name or ""):
        if chunk:
            parts.extend(p.lower() for p in _CAMEL.split(chunk) if p)
    return parts


def _first_verb(tokens: list[str]) -> str | None:
    for tok in tokens:
        if tok in READ_VERBS:
            return "read"
        if tok in WRITE_VERBS:
            return "write"
    return None


def classify(name: str, description: str | None, http_method: str | None, annotations: dict | None = None) -> str:
    """``read`` or ``write`` by the rules in the module docstring."""
    if isinstance(annotations, dict):
        if annotations.get("readOnlyHint") is True:
            return "read"
        if annotations.get("readOnlyHint") is False or annotations.get("destructiveHint") is True:
            return "write"
    name_verb = _first_verb(words(name))
    if http_method:
        method = http_method.upper()
        if method in ("GET", "HEAD", "OPTIONS", "TRACE"):
            return "read"
        return "read" if name_verb == "read" else "write"
    if name_verb:
        return name_verb
    text = description or ""
    if "Tool description:" in text:
        text = text.split("Tool description:", 1)[1]
    sentence = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
    return _first_verb([w.lower() for w in _WORD.findall(sentence)]) or "read"


def clean_description(text: Any) -> str:
    if not isinstance(text, str) or not text:
        return ""
    text = _MD_LINK.sub(r"\1", text)
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    text = _WS.sub(" ", text).strip()
    if len(text) > MAX_DESCRIPTION:
        text = text[: MAX_DESCRIPTION - 3].rsplit(" ", 1)[0] + "..."
    return text


def usable(text: str) -> bool:
    return len(_WORD.findall(text)) >= MIN_WORDS


def pick_description(description: Any, summary: Any) -> str | None:
    """The tool's description, falling back to the summary; None when neither is usable."""
    desc = clean_description(description)
    if usable(desc):
        return desc
    summ = clean_description(summary)
    if usable(summ):
        return summ
    both = " ".join(dict.fromkeys(x for x in (summ, desc) if x))
    return both if usable(both) else None


MAX_COMPOSED_PARAMETERS = 12


def compose_description(raw: dict) -> str:
    """A description for an operation whose own has fewer than 3 words, from what the source does say.

    ``<summary or description, else the name's words>. <METHOD> <path> in the <API title> API. Parameters:
    <names>.`` (each part only when known; at most 12 parameter names, then "and N more"). Deterministic,
    no model: the programmatic default of the paper's description rewriting.
    """
    head = " ".join(dict.fromkeys(x for x in (clean_description(raw.get("summary")),
                                               clean_description(raw.get("description"))) if x))
    if not head:
        head = " ".join(words(raw.get("name_hint") or raw.get("original_name") or "")) or "Operation"
    head = head[0].upper() + head[1:]
    parts = [head if head.endswith((".", "!", "?")) else head + "."]
    method, path, title = raw.get("http_method"), raw.get("http_path"), clean_description(raw.get("api_title"))
    if method and path:
        parts.append(f"{method.upper()} {path}" + (f" in the {title} API." if title else "."))
    elif title:
        parts.append(f"Part of the {title} API.")
    props = (raw.get("parameters") or {}).get("properties") or {}
    names = list(props)[:MAX_COMPOSED_PARAMETERS]
    if names:
        more = f" and {len(props) - len(names)} more" if len(props) > len(names) else ""
        parts.append(f"Parameters: {', '.join(names)}{more}.")
    else:
        parts.append("Takes no parameters.")
    return " ".join(parts)[:MAX_DESCRIPTION]


def describe(raw: dict) -> tuple[str, str, str]:
    """(description, origin, original): the text used, where it came from, the source's own cleaned text."""
    original = clean_description(raw.get("description"))
    if usable(original):
        return original, "source", original
    picked = pick_description(raw.get("description"), raw.get("summary"))
    if picked is not None:
        return picked, "summary", original
    return compose_description(raw), "composed", original


def _type_label(schema: dict) -> str:
    t = schema.get("type") or "any"
    if t == "array":
        inner = schema.get("items") or {}
        return f"array of {inner.get('type') or 'any'}"
    return t


def explicit_description(tool: Any) -> str:
    """The programmatic description rewrite: the tool's purpose, then its inputs and output, spelled out.

    ``tool`` is a ToolSpec or a dict with ``description``, ``parameters`` and ``returns``.
    """
    get = tool.get if isinstance(tool, dict) else lambda k, d=None: getattr(tool, k, d)
    base = (get("description") or "").strip()
    if " Inputs: " in base:  # already rewritten: rewriting again must not stack
        base = base.split(" Inputs: ", 1)[0]
    params = get("parameters") or {}
    props = params.get("properties") or {}
    required = set(params.get("required") or [])
    parts = []
    for pname, sch in props.items():
        sch = sch if isinstance(sch, dict) else {}
        bits = [_type_label(sch), "required" if pname in required else "optional"]
        if "default" in sch:
            bits.append(f"default {canonical_json(sch['default'])}")
        if sch.get("enum"):
            bits.append("one of " + ", ".join(canonical_json(v) for v in sch["enum"][:10]))
        line = f"{pname} ({', '.join(bits)})"
        if sch.get("description"):
            line += f": {sch['description']}"
        parts.append(line)
    inputs = "; ".join(parts) if parts else "none"
    returns = get("returns")
    if isinstance(returns, dict) and returns:
        fields = returns.get("properties") or {}
        if fields:
            shown = ", ".join(f"{k} ({_type_label(v if isinstance(v, dict) else {})})" for k, v in list(fields.items())[:12])
            more = f", and {len(fields) - 12} more" if len(fields) > 12 else ""
            out = f"an object with {shown}{more}"
        else:
            out = _type_label(returns)
            if returns.get("description"):
                out += f": {returns['description']}"
    else:
        out = "unspecified"
    if base and not base.endswith((".", "!", "?")):
        base += "."
    return f"{base} Inputs: {inputs}. Returns: {out}.".strip()


def signature(parameters: dict) -> list[list[str]]:
    """Sorted (name, type) pairs of the top-level arguments: the near-duplicate signature."""
    props = parameters.get("properties") or {}
    return sorted([k, str((v or {}).get("type", "any")) if isinstance(v, dict) else "any"] for k, v in props.items())


def make_tool_id(source_format: str, source_file: str, original_name: str, http_method: str | None,
                 http_path: str | None, occurrence: int) -> str:
    """Stable id: hash of where the tool came from and its original name (see ToolSpec.tool_id)."""
    return content_hash([source_format, source_file, original_name, http_method, http_path, occurrence])[:20]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def normalise(raw: dict, source_format: str, source_file: str, occurrence: int) -> tuple[dict | None, str | None]:
    """One loaded operation -> (tool record, None) or (None, filter reason).

    A tool record is a flat dict whose keys are the corpus.parquet columns, plus ``_exact`` / ``_near``
    dedup keys (computed here, once per file, so that the cache carries them).
    """
    original = raw["original_name"]
    method = raw.get("http_method")
    path = raw.get("http_path")
    tool_id = make_tool_id(source_format, source_file, original, method, path, occurrence)
    description, origin, original_description = describe(raw)
    params = raw["parameters"]
    name = valid_name(raw.get("name_hint") or original)
    params_json = canonical_json(params)
    returns = raw.get("returns")
    returns_json = canonical_json(returns) if returns is not None else None
    record = {
        "tool_id": tool_id,
        "name": name,
        "description": description,
        "parameters": params_json,
        "returns": returns_json,
        "operation": classify(original, description, method, raw.get("annotations")),
        "source_file": source_file,
        "source_format": source_format,
        "api_title": raw.get("api_title"),
        "provider": raw.get("provider"),
        "categories": canonical_json(sorted(set(raw.get("categories") or []))),
        "http_method": method.upper() if method else None,
        "http_path": path,
        "original_name": original,
        # the source's own text, kept where the description column says something else
        "original_description": original_description if original_description != description else None,
        "description_origin": origin,
        "_near": content_hash([name_key(name), signature(params)]),
        "_exact": _digest(name_key(name), description, params_json, returns_json or ""),
    }
    return record, None
