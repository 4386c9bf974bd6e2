"""Words of tool names: verbs, nouns, id parameters, singular/plural (the programmatic schema's vocabulary)."""

from __future__ import annotations

import builtins
import keyword
import re

from agentscaler_dagster.sandbox.static_check import FORBIDDEN_NAMES

# a tool named "list" or "decimal" would shadow the builtin or module the generated helpers use
_BUILTIN_NAMES = frozenset(dir(builtins))
_HELPER_NAMES = frozenset({"decimal", "json", "math", "re", "datetime", "copy", "itertools", "collections",
                           "statistics", "state", "arguments"})

READ_VERBS = frozenset({
    "get", "list", "search", "find", "fetch", "retrieve", "show", "read", "query", "lookup", "look", "check",
    "view", "describe", "count", "browse", "download", "export", "calculate", "compute", "estimate", "lookup",
    "display", "load", "inspect", "verify", "validate", "track", "filter", "explore", "discover", "recommend",
})
CREATE_VERBS = frozenset({
    "create", "add", "new", "post", "insert", "register", "book", "make", "submit", "place", "upload",
    "generate", "send", "schedule", "issue", "write", "record", "log", "reserve", "buy", "purchase",
    "invite", "subscribe", "start", "open", "import", "publish", "save", "attach", "request", "apply",
    "enroll", "transfer", "pay", "share", "follow", "comment", "like", "rate", "review", "rent", "hire",
    "deposit", "withdraw", "redeem", "topup",
})
UPDATE_VERBS = frozenset({
    "update", "set", "modify", "edit", "put", "patch", "change", "rename", "replace", "assign", "move",
    "adjust", "reschedule", "upgrade", "downgrade", "configure", "mark", "tag", "label", "increase", "decrease",
})
DELETE_VERBS = frozenset({"delete", "remove", "destroy", "purge", "drop", "clear", "unregister", "unsubscribe",
                          "unfollow", "detach", "erase", "discard"})
# verb -> the status a record ends in; the first group cannot be applied twice
STATUS_VERBS = {
    "cancel": "cancelled", "close": "closed", "archive": "archived", "revoke": "revoked", "void": "voided",
    "reject": "rejected", "deactivate": "inactive", "disable": "disabled", "suspend": "suspended",
    "approve": "approved", "confirm": "confirmed", "complete": "completed", "activate": "active",
    "enable": "enabled", "resolve": "resolved", "lock": "locked", "unlock": "unlocked", "pause": "paused",
    "resume": "active", "finish": "completed", "accept": "accepted", "decline": "declined", "block": "blocked",
    "unblock": "active", "refund": "refunded", "return": "returned", "ship": "shipped", "deliver": "delivered",
    "verify_status": "verified", "restore": "active", "stop": "stopped", "end": "ended",
}
ALL_VERBS = READ_VERBS | CREATE_VERBS | UPDATE_VERBS | DELETE_VERBS | frozenset(STATUS_VERBS)

# words that qualify a noun in a tool name but do not name the entity
_NOUN_NOISE = frozenset({
    "by", "for", "of", "with", "from", "to", "in", "on", "at", "the", "a", "an", "and", "or", "all", "details",
    "detail", "info", "information", "data", "summary", "list", "current", "new", "my", "latest", "recent",
    "available", "single", "specific", "existing", "one", "many", "multiple", "id", "ids", "v1", "v2", "v3",
    "api", "bulk", "batch", "full", "basic", "public", "own", "items_by",
})
_ASPECT_WORDS = frozenset({"status", "history", "price", "prices", "count", "total", "balance", "stats",
                           "statistics", "settings", "config", "metadata", "availability", "state"})
LIMIT_PARAMS = frozenset({"limit", "max_results", "page_size", "per_page", "top", "size", "max", "count",
                          "max_items", "num_results", "n", "k", "first"})
OFFSET_PARAMS = frozenset({"offset", "skip", "start", "start_index"})
PAGE_PARAMS = frozenset({"page", "page_number", "page_token", "cursor", "next_token", "pagetoken"})
QUERY_PARAMS = frozenset({"query", "q", "search", "keyword", "keywords", "term", "search_term", "text",
                          "search_query", "filter", "search_string"})
SORT_PARAMS = frozenset({"sort", "sort_by", "order_by", "sortby", "orderby", "sort_order", "order", "direction"})
# fields so common across entities that a shared name says nothing about a dependency
GENERIC_FIELDS = frozenset({"name", "type", "status", "description", "title", "value", "date", "note", "notes",
                            "label", "message", "content", "text", "comment", "reason", "format", "language",
                            "lang", "locale", "currency", "country", "fields", "include", "expand", "version"})


def to_snake(name: str) -> str:
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name))
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    s = re.sub(r"[^0-9a-zA-Z]+", "_", s).strip("_").lower()
    return s or "x"


def singular(word: str) -> str:
    if len(word) <= 3 or word.endswith(("ss", "us", "is", "ics", "news", "series", "data", "status")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zes")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def plural(word: str) -> str:
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def split_name(name: str) -> tuple[str | None, list[str]]:
    """(verb, noun tokens) of a tool name; the verb is None when the name starts with none we know."""
    tokens = [t for t in to_snake(name).split("_") if t]
    verb = None
    # a provider prefix such as "ec2_describe_instances": the first known verb among the first tokens
    for i, token in enumerate(tokens[:3]):
        if token in ALL_VERBS:
            verb = token
            tokens = tokens[:i] + tokens[i + 1:] if i == 0 else tokens[i + 1:]
            break
    return verb, tokens


def noun_of(name: str, http_path: str | None = None) -> str:
    """The entity a tool acts on, singular snake case ("list_products" -> "product")."""
    _, tokens = split_name(name)
    # "get_order_by_customer": the entity stands before "by"/"for"
    for stop in ("by", "for", "from", "with", "of", "in"):
        if stop in tokens and tokens.index(stop) > 0:
            tokens = tokens[:tokens.index(stop)]
            break
    tokens = [t for t in tokens if t not in _NOUN_NOISE and not t.isdigit()]
    # "get_order_status": a trailing aspect word names a field of the entity, not an entity
    while len(tokens) > 1 and tokens[-1] in _ASPECT_WORDS:
        tokens = tokens[:-1]
    if not tokens and http_path:
        literal = [seg for seg in http_path.strip("/").split("/") if seg and not seg.startswith("{")]
        literal = [to_snake(seg) for seg in literal if to_snake(seg) not in ALL_VERBS
                   and not re.fullmatch(r"v\d+(_\d+)?", to_snake(seg))]
        if literal:
            tokens = literal[-1].split("_")
    if not tokens:
        return "item"
    tokens = tokens[-2:]
    tokens[-1] = singular(tokens[-1])
    return "_".join(tokens)


def id_entity(param: str) -> tuple[str | None, bool]:
    """For an id-like parameter name, the entity it names (None for a bare 'id') and whether it is a list."""
    snake = to_snake(param)
    if snake in ("id", "uuid", "key", "identifier"):
        return None, False
    for suffix, many in (("_ids", True), ("_id", False), ("_uuid", False), ("_key", False), ("_number", False),
                         ("_code", False)):
        if snake.endswith(suffix) and len(snake) > len(suffix):
            entity = snake[: -len(suffix)]
            if suffix in ("_number", "_code", "_key") and entity not in {
                    "order", "account", "ticket", "invoice", "booking", "confirmation", "reservation",
                    "flight", "tracking", "policy", "claim", "case", "product", "customer", "employee"}:
                return "", False
            return singular(entity), many
    return "", False


def is_id_param(param: str) -> bool:
    entity, _ = id_entity(param)
    return entity != ""


def python_function_name(tool_name: str) -> str:
    """The function that implements a tool: its own name, or ``tool_<name>`` where the name is not usable."""
    if (tool_name.isidentifier() and not keyword.iskeyword(tool_name) and not tool_name.startswith("_")
            and tool_name not in FORBIDDEN_NAMES and tool_name != "ToolError"
            and tool_name not in _BUILTIN_NAMES and tool_name not in _HELPER_NAMES):
        return tool_name
    return "tool_" + re.sub(r"\W", "_", tool_name).strip("_")
