"""A small JSON Schema checker whose messages an agent can act on.

It covers what tool parameter schemas and state schemas use (type, required, properties, items, enum,
additionalProperties, nullable unions) and says which argument of which tool is wrong and how. It is
also fast, because it runs in the parent before every sandboxed call.
"""

from __future__ import annotations

from typing import Any

_TYPE_NAMES = {
    "string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict, "array": list,
    "null": type(None),
}


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_ok(value: Any, expected: str) -> bool:
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    py = _TYPE_NAMES.get(expected)
    return True if py is None else isinstance(value, py)


def check_value(value: Any, schema: dict | None, where: str, depth: int = 0) -> str | None:
    """First problem with ``value`` against ``schema`` (None when it fits). ``where`` names the value."""
    if not isinstance(schema, dict) or depth > 20:
        return None
    types = schema.get("type")
    if isinstance(types, str):
        types = [types]
    if schema.get("nullable") and types:
        types = list(types) + ["null"]
    if types and not any(_type_ok(value, t) for t in types):
        return f"{where} must be {' or '.join(types)}, got {json_type(value)}"
    if "enum" in schema and isinstance(schema["enum"], list) and value not in schema["enum"]:
        allowed = ", ".join(repr(v) for v in schema["enum"][:20])
        return f"{where} must be one of {allowed}; got {value!r}"
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            if all(check_value(value, opt, where, depth + 1) for opt in options):
                return f"{where} matches none of the allowed forms"
    if isinstance(value, dict):
        return check_object(value, schema, where, depth + 1)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problem = check_value(item, schema["items"], f"{where}[{i}]", depth + 1)
            if problem:
                return problem
    return None


def check_object(value: dict, schema: dict, where: str, depth: int = 0) -> str | None:
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    for name in schema.get("required") or []:
        if name not in value:
            return f"{where} is missing required field '{name}'"
    extra = schema.get("additionalProperties", True)
    for key in sorted(value):
        if key in props:
            problem = check_value(value[key], props[key], f"{where}.{key}", depth + 1)
        elif extra is False:
            problem = f"{where} has unknown field '{key}'"
        elif isinstance(extra, dict):
            problem = check_value(value[key], extra, f"{where}[{key!r}]", depth + 1)
        else:
            problem = None
        if problem:
            return problem
    return None


def check_arguments(tool_name: str, parameters: dict | None, arguments: Any) -> str | None:
    """An agent-facing error for ``arguments`` of ``tool_name`` (None when they are valid).

    Unknown arguments are refused even when the schema leaves ``additionalProperties`` open: a tool
    function has a fixed signature, and telling the agent which names exist is the useful answer.
    """
    if not isinstance(arguments, dict):
        return f"Error: arguments for {tool_name} must be a JSON object, got {json_type(arguments)}"
    parameters = parameters if isinstance(parameters, dict) else {}
    props = parameters.get("properties") if isinstance(parameters.get("properties"), dict) else {}
    for name in parameters.get("required") or []:
        if name not in arguments:
            return f"Error: missing required argument '{name}' for {tool_name}"
    for key in sorted(arguments):
        if key not in props:
            accepted = ", ".join(sorted(props)) or "none"
            return f"Error: unknown argument '{key}' for {tool_name}; accepted arguments: {accepted}"
        problem = check_value(arguments[key], props[key], f"argument '{key}'")
        if problem:
            return f"Error: {problem} (tool {tool_name})"
    return None
