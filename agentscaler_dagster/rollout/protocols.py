"""The two roles of an episode (tau-bench style): a simulated user and an agent.

Both have a programmatic simulator (the embedded default, no model) and model-backed
implementations; the episode loop only sees these protocols.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class AgentPolicy(Protocol):
    """Decides the agent's next assistant message."""

    name: str

    def act(self, messages: list[dict], tools: list[dict]) -> dict:
        """Return one OpenAI-format assistant message.

        ``{"role": "assistant", "content": str | None, "tool_calls": [{"id": str, "type": "function",
        "function": {"name": str, "arguments": "<json text>"}}]}`` (``tool_calls`` absent or empty when
        the agent replies to the user in text).
        """
        ...


@runtime_checkable
class UserSimulator(Protocol):
    """Plays the user who was told the task's intent."""

    name: str

    def start(self, user_intent: str) -> str:
        """The user's first message."""
        ...

    def reply(self, messages: list[dict]) -> str | None:
        """The user's next message after the agent's text reply, or None when the user is done."""
        ...

    # Optional: ``astart`` / ``areply`` (and an agent's ``aact``): coroutines the asyncio episode engine awaits
    # instead of giving the call a thread; or ``nonblocking = True`` for a role that never waits (it then runs on
    # the engine's loop); ``reads_messages_only = True`` for a role that never changes the messages it is given
    # (the episode then hands it the record's messages instead of copies). A coroutine twin and
    # ``reads_messages_only`` hold for the class that declares them: a subclass that overrides ``act`` / ``reply``
    # alone (an instrumented or slowed-down wrapper) loses them unless it declares them again, since its own
    # method may block or change what it is given.
    # Optional: ``bind_task(task)`` is called by the episode loop before ``start`` when a user simulator
    # (or an agent simulator) defines it; a user takes the task's scenario there (persona, requests, facts),
    # never the gold actions; the oracle agent simulator takes the gold steps.
