"""Programmatic simulators of the two roles: the embedded default that needs no model.

They are simulators, not models, and they cooperate through a written convention:

* ``ScriptedUserSimulator`` is given the task's gold actions as a private script (through
  ``bind_task``; a model-backed user would only read the intent). It asks for the steps in
  natural language, one or a few per message, and writes after each step a tool hint in a fixed
  form: ``use `cancel_order` with {"order_id": "o-12"}``.
* ``ProgrammaticAgentSimulator`` does no language understanding: it parses those hints out of the
  latest user message, calls the named tools with the given arguments, reads the tool outputs and
  replies with a templated summary. With probability ``error_rate`` per requested step it makes a
  realistic mistake (a wrong argument value, with or without a retry after the error; a skipped
  step; an extra call; a degenerate repeated reply), so the three-stage filter rejects a
  measurable share of its trajectories.

Both are seeded; an episode with the same seeds gives the same messages.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

from agentscaler_dagster.contracts import GoldAction, Task
from agentscaler_dagster.tasks.sampling import describe_action

STOP_MARKER = "###STOP###"
_HINT = re.compile(r"`([A-Za-z_][A-Za-z0-9_.\-]*)` with ")
MISTAKE_KINDS = ("wrong_argument", "wrong_argument_then_fix", "skipped_step", "extra_call", "repeated_text")


def render_hint(name: str, arguments: dict) -> str:
    return f"use `{name}` with {json.dumps(arguments, sort_keys=True, ensure_ascii=False)}"


def parse_hints(text: str) -> list[tuple[str, dict]]:
    """The ``(tool, arguments)`` hints in a user message, in order; malformed hints are skipped."""
    found = []
    decoder = json.JSONDecoder()
    for match in _HINT.finditer(text or ""):
        try:
            arguments, _ = decoder.raw_decode(text, match.end())
        except json.JSONDecodeError:
            continue
        if isinstance(arguments, dict):
            found.append((match.group(1), arguments))
    return found


# ---- the user ---------------------------------------------------------------------------------

_FIRST = ("Hi! {intent} Let's go step by step. {steps}", "Hello. {intent} {steps}", "Hi there, {intent_lc} {steps}")
_LEADS = ("First, please {}", "Please {}", "Could you {}", "I need you to {}")
_NEXT_LEADS = ("Thanks. Next, please {}", "Great. Now could you {}", "OK, thank you. Then please {}", "Next, I'd like you to {}")
_THEN = (" Then {}", " After that, {}", " Also {}")
_STOPS = (
    "Thank you, that's everything I needed.",
    "Great, that's all for today, thanks!",
    "Perfect, thank you for your help.",
)


class ScriptedUserSimulator:
    """A user who follows the task's gold actions as a script (a simulator, not a model)."""

    name = "scripted-user-simulator"

    def __init__(self, seed: int, script: list[GoldAction] | list[dict] | None = None, max_steps_per_message: int = 2):
        if max_steps_per_message < 1:
            raise ValueError(f"max_steps_per_message must be >= 1, got {max_steps_per_message}")
        self.seed = seed
        self._rng = random.Random(seed)
        self.max_steps_per_message = max_steps_per_message
        self.script: list[GoldAction] = [GoldAction.model_validate(a) for a in (script or [])]
        self._chunks: list[list[GoldAction]] = []
        self._next = 0

    def bind_task(self, task: Task) -> None:
        """Give the simulator its private script: the task's gold actions."""
        self.script = list(task.gold_actions)

    def _split(self) -> list[list[GoldAction]]:
        chunks, i = [], 0
        while i < len(self.script):
            size = self._rng.randint(1, self.max_steps_per_message)
            chunks.append(self.script[i : i + size])
            i += size
        return chunks

    def _render(self, chunk: list[GoldAction], leads: tuple[str, ...]) -> str:
        parts = []
        for k, action in enumerate(chunk):
            ask = f"{describe_action(action.name, action.arguments)} ({render_hint(action.name, action.arguments)})."
            parts.append(self._rng.choice(leads).format(ask) if k == 0 else self._rng.choice(_THEN).format(ask))
        return "".join(parts)

    def start(self, user_intent: str) -> str:
        self._chunks = self._split()
        self._next = 1
        if not self._chunks:
            return user_intent
        steps = self._render(self._chunks[0], _LEADS)
        intent_lc = user_intent[:1].lower() + user_intent[1:]
        return self._rng.choice(_FIRST).format(intent=user_intent, intent_lc=intent_lc, steps=steps)

    def reply(self, messages: list[dict]) -> str | None:
        if self._next < len(self._chunks):
            chunk = self._chunks[self._next]
            self._next += 1
            return self._render(chunk, _NEXT_LEADS)
        return f"{self._rng.choice(_STOPS)} {STOP_MARKER}"


# ---- the agent --------------------------------------------------------------------------------


@dataclass
class _PlannedCall:
    name: str
    arguments: dict
    fix: dict | None = None  # the correct arguments, retried when this call errors


@dataclass
class _Turn:
    plan: list[_PlannedCall] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    repeat_reply: bool = False


_OPENERS = ("Done.", "All set.", "I've taken care of that.", "That's complete.")
_CLOSERS = ("Is there anything else I can help with?", "What else can I do for you?", "Anything else?")


class ProgrammaticAgentSimulator:
    """An agent that executes the tool hints of the scripted user (a simulator, not a model)."""

    name = "programmatic-agent-simulator"

    def __init__(self, seed: int, error_rate: float = 0.15):
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
        self.seed = seed
        self.error_rate = error_rate
        self._rng = random.Random(seed)
        self._users_seen = 0
        self._turn = _Turn()
        self._calls = 0
        self._pending_fix: _PlannedCall | None = None
        self.mistakes: list[str] = []
        self.sampling = {"policy": "programmatic-simulator", "seed": seed, "error_rate": error_rate}

    def act(self, messages: list[dict], tools: list[dict]) -> dict:
        schemas = {t["function"]["name"]: t["function"].get("parameters") or {} for t in tools}
        users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
        if len(users) > self._users_seen:
            self._users_seen = len(users)
            self._turn = self._plan(messages[users[-1]].get("content") or "", schemas)
            self._pending_fix = None
        last = messages[-1] if messages else {}
        if self._pending_fix is not None:
            fix, self._pending_fix = self._pending_fix, None
            if last.get("role") == "tool" and str(last.get("content", "")).startswith("Error"):
                return self._call(fix.name, fix.arguments)
        if self._turn.plan:
            planned = self._turn.plan.pop(0)
            if planned.fix is not None:
                self._pending_fix = _PlannedCall(planned.name, planned.fix)
            return self._call(planned.name, planned.arguments)
        return {"role": "assistant", "content": self._summary(messages, users[-1] if users else 0)}

    def _call(self, name: str, arguments: dict) -> dict:
        self._calls += 1
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{self._calls:03d}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments, sort_keys=True, ensure_ascii=False)},
                }
            ],
        }

    def _plan(self, text: str, schemas: dict[str, dict]) -> _Turn:
        turn = _Turn()
        for name, arguments in parse_hints(text):
            if name not in schemas:
                turn.unknown.append(name)
                continue
            if self._rng.random() >= self.error_rate:
                turn.plan.append(_PlannedCall(name, arguments))
                continue
            kind = self._rng.choice(MISTAKE_KINDS)
            if kind.startswith("wrong_argument") and not arguments:
                kind = "extra_call"
            self.mistakes.append(kind)
            if kind == "wrong_argument":
                turn.plan.append(_PlannedCall(name, self._corrupt(arguments, schemas[name])))
            elif kind == "wrong_argument_then_fix":
                turn.plan.append(_PlannedCall(name, self._corrupt(arguments, schemas[name]), fix=arguments))
            elif kind == "extra_call":
                turn.plan += [_PlannedCall(name, arguments), _PlannedCall(name, arguments)]
            elif kind == "repeated_text":
                turn.plan.append(_PlannedCall(name, arguments))
                turn.repeat_reply = True
            # skipped_step: nothing planned
        return turn

    def _corrupt(self, arguments: dict, parameters: dict) -> dict:
        """The same arguments with one value plausibly wrong (a typo'd id, an off-by-one, another enum)."""
        wrong = dict(arguments)
        key = self._rng.choice(sorted(arguments))
        value = arguments[key]
        schema = ((parameters or {}).get("properties") or {}).get(key) or {}
        others = [v for v in schema.get("enum") or [] if v != value]
        if others:
            wrong[key] = self._rng.choice(others)
        elif isinstance(value, bool):
            wrong[key] = not value
        elif isinstance(value, int):
            wrong[key] = value + self._rng.choice((-1, 1))
        elif isinstance(value, float):
            wrong[key] = round(value * 1.1 + 1.0, 2)
        elif isinstance(value, str):
            digits = re.search(r"(\d+)(?!.*\d)", value)
            if digits:
                n = int(digits.group(1)) + self._rng.randint(1, 9)
                wrong[key] = value[: digits.start()] + str(n) + value[digits.end() :]
            else:
                wrong[key] = value + "s" if value else "unknown"
        else:
            wrong[key] = type(value)()
        return wrong

    def _summary(self, messages: list[dict], since: int) -> str:
        calls: dict[str, str] = {}
        lines = []
        for m in messages[since:]:
            for tc in m.get("tool_calls") or []:
                calls[tc.get("id")] = tc.get("function", {}).get("name", "?")
            if m.get("role") == "tool":
                name = calls.get(m.get("tool_call_id"), "the tool")
                content = str(m.get("content", ""))
                if content.startswith("Error"):
                    lines.append(f"{name} reported an error ({_clip(content[6:].strip(), 80)}).")
                else:
                    lines.append(f"{name} returned {_describe_output(content)}.")
        if self._turn.unknown:
            lines.append("I have no tool named " + ", ".join(self._turn.unknown) + ", so I could not do that part.")
        if not lines:
            return "I could not find a request I can act on. Which action should I take, and with which values?"
        if self._turn.repeat_reply:
            # the degenerate loop the validity filter exists for
            self._turn.repeat_reply = False
            return " ".join([lines[-1]] * 6)
        return " ".join([self._rng.choice(_OPENERS), *lines, self._rng.choice(_CLOSERS)])


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _describe_output(content: str) -> str:
    try:
        value: Any = json.loads(content)
    except json.JSONDecodeError:
        return _clip(content, 60)
    if isinstance(value, dict):
        pairs = [f"{k}={_clip(json.dumps(v, ensure_ascii=False), 30)}" for k, v in sorted(value.items())[:4]]
        more = f" and {len(value) - 4} more fields" if len(value) > 4 else ""
        return ("a record with " + ", ".join(pairs) + more) if pairs else "an empty record"
    if isinstance(value, list):
        return f"{len(value)} item{'s' if len(value) != 1 else ''}"
    return _clip(json.dumps(value, ensure_ascii=False), 60)
