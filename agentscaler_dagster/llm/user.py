"""The simulated user played by a model behind an OpenAI-compatible server (tau-bench style).

The model is told the user's goal, never the tools or the gold actions; it sees the conversation from
the user's side (the agent's words as the other speaker, tool traffic hidden) and ends it by writing the
stop marker, which the episode loop reads.
"""

from __future__ import annotations

from agentscaler_dagster.llm.client import OpenAICompatibleClient
from agentscaler_dagster.rollout.simulators import STOP_MARKER

_SYSTEM = (
    "You are a customer talking to a support agent. Your goal: {intent}\n"
    "Speak as this person in one or two short sentences per message. Give facts only when the agent asks "
    "for them; never mention tools, functions or JSON. When your goal is met, or it cannot be met, thank "
    f"the agent and end your message with {STOP_MARKER}"
)


def user_view(messages: list[dict]) -> list[dict]:
    """The conversation as the user sees it: agent text as the other party, tool calls and results hidden."""
    view = []
    for message in messages:
        role, content = message.get("role"), (message.get("content") or "").strip()
        if role == "user" and content:
            view.append({"role": "assistant", "content": content})
        elif role == "assistant" and content:
            view.append({"role": "user", "content": content})
    return view


class OpenAIUserSimulator:
    """UserSimulator over the `llm` endpoint; share one client across episodes."""

    def __init__(self, *, client: OpenAICompatibleClient, temperature: float = 0.7, max_tokens: int = 128, seed: int | None = None):
        self.client = client
        self.name = f"openai-user:{client.model}"
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self._system = ""

    def start(self, user_intent: str) -> str:
        self._system = _SYSTEM.format(intent=user_intent)
        messages = [{"role": "system", "content": self._system},
                    {"role": "user", "content": "The agent greets you: how can I help? Write your first message."}]
        return self._ask(messages)

    def reply(self, messages: list[dict]) -> str | None:
        view = user_view(messages[1:])  # the agent's system prompt is not the user's business
        return self._ask([{"role": "system", "content": self._system}, *view])

    def _ask(self, messages: list[dict]) -> str:
        reply = self.client.chat(messages=messages, temperature=self.temperature, max_tokens=self.max_tokens, seed=self.seed)
        text = (reply.get("content") or "").strip()
        # an empty answer would end nothing and teach nothing: the user is done
        return text or STOP_MARKER
