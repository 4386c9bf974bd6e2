"""What a user message must never contain: the agent's side of the task leaking into the user's words.

A person asking for help does not write a tool name, an argument name in code form, a JSON object, or an
internal id they could not know. The ids a user may say are those of its scenario's facts (a booking
reference the user was given); every other id of the environment - a record key of an initial state or
anything shaped like one of its collections' ids - is a leak.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from agentscaler_dagster.contracts import UserScenario
from agentscaler_dagster.tasks.environment import EnvironmentLike

_TOKEN = re.compile(r"[A-Za-z0-9][\w.@+-]*[A-Za-z0-9]|[A-Za-z0-9]")
_JSON = re.compile(r"[{}]|\"\s*:|\[\s*\"")


def _code_form(name: str) -> bool:
    """``cancel_order`` or ``cancelOrder``: a name nobody says aloud."""
    return "_" in name or re.search(r"[a-z][A-Z]", name) is not None


class LeakDetector:
    """Scans user messages of one environment's episodes (see the module docstring)."""

    def __init__(self, env: EnvironmentLike):
        names: set[str] = set()
        params: set[str] = set()
        for tool in env.tools:
            fn = tool["function"]
            names.add(fn["name"])
            params |= set(((fn.get("parameters") or {}).get("properties") or {}))
        self.tool_names = {n for n in names if _code_form(n)}
        self.argument_names = {p for p in params if _code_form(p)}
        ids: set[str] = set()
        for state in env.initial_states.values():
            for coll, table in state.items():
                if isinstance(table, dict) and not str(coll).startswith("_"):
                    ids |= {k for k in table if isinstance(k, str)}
        self.ids = ids
        prefixes = [c.get("id_prefix") for c in ((env.schema or {}).get("collections") or {}).values() if c.get("id_prefix")]
        self.id_shape = re.compile(r"^(?:" + "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True))
                                   + r")-\d+$") if prefixes else None

    def leaks(self, text: str, scenario: UserScenario | None = None) -> list[str]:
        """What in ``text`` the user could not have written, in words; empty when nothing leaks."""
        allowed = _known_tokens(scenario.facts if scenario else [])
        found = []
        if _JSON.search(text or ""):
            found.append("a JSON object")
        for token in _TOKEN.findall(text or ""):
            if token in self.tool_names:
                found.append(f"tool name {token!r}")
            elif token in self.argument_names:
                found.append(f"argument name {token!r}")
            elif token not in allowed and (token in self.ids or (self.id_shape and self.id_shape.match(token))):
                found.append(f"internal id {token!r}")
        return list(dict.fromkeys(found))


def _known_tokens(facts: Iterable[Any]) -> set[str]:
    known: set[str] = set()
    for fact in facts:
        known |= set(_TOKEN.findall(str(fact.said)))
        if isinstance(fact.value, str):
            known.add(fact.value)
    return known


def scan_user_messages(detector: LeakDetector, messages: list[dict], scenario: UserScenario | None) -> list[str]:
    """``"message k: <what leaked>"`` for every user message of an episode that leaks."""
    out = []
    for k, message in enumerate(messages):
        if message.get("role") == "user":
            for leak in detector.leaks(str(message.get("content") or ""), scenario):
                out.append(f"message {k}: {leak}")
    return out
