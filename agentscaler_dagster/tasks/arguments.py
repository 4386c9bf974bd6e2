"""Filling a tool's arguments during a random walk.

Values come, in this order of preference, from the previous step's output (the dependency edge's
linking field, which is what makes a walk a coherent task), from records that exist in the current
state (so ids point at something), and from the parameter's JSON schema via the seeded RNG (enums,
bounded numbers, formatted strings). A bad guess is cheap: the walk executes the call and resamples
when the tool raises.
"""

from __future__ import annotations

import math
import random
import re
from collections import defaultdict
from typing import Any

_WORDS = (
    "amber", "birch", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper",
    "kestrel", "lumen", "maple", "nova", "orchid", "pepper", "quartz", "raven", "sierra", "tundra",
)
_SCALARS = (str, int, float, bool)
# how often an optional parameter is given when nothing links it to the walk
OPTIONAL_PARAMETER_RATE = 0.35
# how often a parameter that names a field seen in the state takes an existing value
STATE_VALUE_RATE = 0.9


def singular(word: str) -> str:
    word = word.lower()
    if word.endswith("ies") and len(word) > 3:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def index_values(value: Any) -> dict[str, list]:
    """``{field: sorted distinct scalar values}`` over every nested record of ``value``.

    A collection kept as ``{record_id: record}`` also contributes its keys under ``<singular>_id``,
    so ``order_id`` finds the ids of ``orders`` even when records do not repeat their own id.
    """
    found: dict[str, set] = defaultdict(set)

    def walk(node: Any, key: str | None) -> None:
        if isinstance(node, dict):
            records = [v for v in node.values() if isinstance(v, dict)]
            if key and node and len(records) == len(node):
                for record_id in node:
                    found[f"{singular(key)}_id"].add(record_id)
            for k in sorted(node, key=str):
                walk(node[k], str(k))
        elif isinstance(node, list):
            for item in node:
                walk(item, key)
        elif key is not None and isinstance(node, _SCALARS) and node is not None:
            found[key].add(node)

    walk(value, None)
    return {k: sorted(v, key=lambda x: (type(x).__name__, str(x))) for k, v in found.items()}


def _types(schema: dict) -> list[str]:
    t = schema.get("type")
    if isinstance(t, list):
        return [x for x in t if x != "null"] or ["null"]
    if isinstance(t, str):
        return [t]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            return [x for opt in options if isinstance(opt, dict) for x in _types(opt)]
    if "properties" in schema:
        return ["object"]
    return ["string"]


def fits(value: Any, schema: dict) -> bool:
    """Whether a value found in the state or an output is acceptable for ``schema``."""
    if "enum" in schema and value not in schema["enum"]:
        return False
    types = _types(schema)
    if isinstance(value, bool):
        return "boolean" in types
    if isinstance(value, int):
        return bool({"integer", "number"} & set(types)) and _in_bounds(value, schema)
    if isinstance(value, float):
        return "number" in types and _in_bounds(value, schema)
    if isinstance(value, str):
        return "string" in types
    return False


def _in_bounds(value: float, schema: dict) -> bool:
    if "minimum" in schema and value < schema["minimum"]:
        return False
    if "maximum" in schema and value > schema["maximum"]:
        return False
    return True


def synthesise(schema: dict, name: str, rng: random.Random, depth: int = 0) -> Any:
    """A value consistent with ``schema`` (enum, bounds, format), made up with the seeded RNG."""
    schema = schema if isinstance(schema, dict) else {}
    if schema.get("enum"):
        return rng.choice(list(schema["enum"]))
    if "const" in schema:
        return schema["const"]
    kind = _types(schema)[0]
    lname = name.lower()
    if kind == "boolean":
        return rng.random() < 0.5
    if kind in ("integer", "number"):
        lo, hi = _bounds(schema, integer=kind == "integer")
        if kind == "integer":
            return rng.randint(int(lo), int(hi))
        return round(rng.uniform(float(lo), float(hi)), 2)
    if kind == "array":
        if depth > 2:
            return []
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {"type": "string"}
        n = max(int(schema.get("minItems", 1)), 1)
        return [synthesise(items, singular(name), rng, depth + 1) for _ in range(min(n, 3))]
    if kind == "object":
        if depth > 2:
            return {}
        props = schema.get("properties") or {}
        required = schema.get("required") or []
        return {k: synthesise(props[k], k, rng, depth + 1) for k in sorted(props) if k in required}
    if kind == "null":
        return None
    return _synthesise_string(schema, lname, rng)


def _bounds(schema: dict, *, integer: bool) -> tuple[float, float]:
    step = 1 if integer else 0.01
    lo, hi = 1, None
    if _is_number(schema.get("minimum")):
        lo = schema["minimum"]
    elif _is_number(schema.get("exclusiveMinimum")):
        lo = schema["exclusiveMinimum"] + step
    if _is_number(schema.get("maximum")):
        hi = schema["maximum"]
    elif _is_number(schema.get("exclusiveMaximum")):
        hi = schema["exclusiveMaximum"] - step
    if hi is None:
        hi = lo + 9
    if integer:
        lo, hi = math.ceil(lo), math.floor(hi)
    return lo, max(hi, lo)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _synthesise_string(schema: dict, lname: str, rng: random.Random) -> str:
    fmt = schema.get("format", "")
    if fmt == "date" or lname.endswith("date") or lname.endswith("_on"):
        value = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    elif fmt == "date-time" or lname.endswith("_at") or lname.endswith("time"):
        value = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z"
    elif fmt == "email" or "email" in lname:
        value = ".".join(rng.sample(_WORDS, 2)) + "@example.com"
    elif fmt in ("uri", "url") or lname.endswith("url"):
        value = f"https://example.com/{rng.choice(_WORDS)}"
    elif "phone" in lname:
        value = f"+1-555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"
    elif lname == "id" or lname.endswith("_id") or lname.endswith("id"):
        prefix = lname[:-3] if lname.endswith("_id") else "id"
        value = f"{prefix[:3] or 'id'}-{rng.randint(100, 999)}"
    else:
        value = " ".join(rng.sample(_WORDS, 2))
    min_len = int(schema.get("minLength", 0))
    max_len = schema.get("maxLength")
    if len(value) < min_len:
        value = value + "x" * (min_len - len(value))
    if isinstance(max_len, int) and max_len > 0:
        value = value[:max_len]
    return value


def fill_arguments(
    parameters: dict,
    *,
    state_index: dict[str, list],
    output_index: dict[str, list] | None,
    link_fields: set[str],
    rng: random.Random,
    tool_name: str = "",
) -> dict:
    """Arguments for one call; see the module docstring for where values come from."""
    props = (parameters or {}).get("properties") or {}
    required = set((parameters or {}).get("required") or [])
    output_index = output_index or {}
    arguments: dict = {}
    for name in sorted(props):
        schema = props[name] if isinstance(props[name], dict) else {}
        # only identifiers flow from the previous output: copying a value field (a status, a
        # quantity) into an update would make walks that change nothing
        linked = []
        if name in link_fields or _is_identifier(name):
            linked = _candidates(name, output_index, schema, prefer_id=True, tool_name=tool_name)
        if linked and (name in link_fields or name in required or rng.random() < 0.8):
            arguments[name] = rng.choice(linked)
            continue
        if name not in required and rng.random() >= OPTIONAL_PARAMETER_RATE:
            continue
        existing = _candidates(name, state_index, schema, prefer_id=False, tool_name=tool_name)
        if existing and rng.random() < STATE_VALUE_RATE:
            arguments[name] = rng.choice(existing)
        else:
            arguments[name] = synthesise(schema, name, rng)
    return arguments


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _is_identifier(name: str) -> bool:
    snake = _snake(name)
    return snake == "id" or snake.endswith("_id")


def _aliases(name: str, tool_name: str) -> list[str]:
    """Field names a parameter may be looked up under: itself, its snake_case form, and for a bare
    ``id`` the ``<noun>_id`` of the tool's nouns (``get_order(id)`` -> ``order_id``)."""
    names = [name, _snake(name)]
    if _snake(name) == "id":
        words = [w for w in _snake(tool_name).split("_") if w]
        names += [f"{singular(w)}_id" for w in reversed(words[1:] or words)]
    return list(dict.fromkeys(names))


def _candidates(name: str, index: dict[str, list], schema: dict, *, prefer_id: bool, tool_name: str = "") -> list:
    for alias in _aliases(name, tool_name):
        values = [v for v in index.get(alias, []) if fits(v, schema)]
        if values:
            return values
    if prefer_id and _snake(name).endswith("_id"):
        # an output that is the record itself carries its id as plain "id"
        return [v for v in index.get("id", []) if fits(v, schema)]
    return []
