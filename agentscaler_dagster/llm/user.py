"""The simulated user played by a model behind an OpenAI-compatible server (tau-bench style).

The model gets a system prompt built from the task's scenario: who it is, what it wants (the requests in
order), the facts it may tell when asked (some only when asked), how to answer a request for confirmation,
and the stop marker. It never sees the tools or the gold actions; it sees the conversation from the user's
side (the agent's words as the other speaker, tool traffic hidden) and ends it by writing the stop marker,
which the episode loop reads. Same interface as ``rollout.ScenarioUserSimulator``.
"""

from __future__ import annotations

from agentscaler_dagster.contracts import ScenarioRequest, Task, UserScenario
from agentscaler_dagster.llm.client import OpenAICompatibleClient
from agentscaler_dagster.rollout.simulators import STOP_MARKER, scenario_of


def user_system_prompt(scenario: UserScenario) -> str:
    """The user model's instructions: persona, requests, facts (known / only when asked), confirmation, stop."""
    lines = [
        scenario.persona,
        "You are talking to a customer-service agent. Speak as this person, in one or two short sentences per "
        "message. Never mention tools, functions, JSON or code, and never invent facts that are not listed below.",
        "",
        "What you want, in this order (ask for the next thing only after the agent has dealt with the previous):",
    ]
    lines += [f"{i}. {r.text}" for i, r in enumerate(scenario.requests, 1)]
    known = [f for f in scenario.facts if not f.hidden]
    hidden = [f for f in scenario.facts if f.hidden]
    if known:
        lines += ["", "Facts you know and may tell the agent:"] + [f"- {f.name}: {f.said}" for f in known]
    if hidden:
        lines += ["", "Facts you tell only if the agent asks for them:"] + [f"- {f.name}: {f.said}" for f in hidden]
    lines += [
        "",
        "If the agent asks you to confirm an action and its details match what you want, answer with 'Yes'; if "
        "they do not, answer 'No' and say what is wrong. If the agent asks for something you do not know, say so.",
        f"When everything you want is done, or the agent says it cannot be done, thank the agent and end your "
        f"message with {STOP_MARKER}",
    ]
    return "\n".join(lines)


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

    reads_messages_only = True  # user_view builds its own messages

    def __init__(self, *, client: OpenAICompatibleClient, temperature: float = 0.7, max_tokens: int = 128,
                 seed: int | None = None, max_messages: int = 12):
        self.client = client
        self.name = f"openai-user:{client.model}"
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.max_messages = max_messages
        self.scenario: UserScenario | None = None
        self._system = ""
        self._said = 0

    def bind_task(self, task: Task) -> None:
        self.scenario = scenario_of(task)

    def _opening(self, user_intent: str) -> list[dict]:
        if self.scenario is None:  # no task bound: the intent is the one request
            self.scenario = UserScenario(persona="You are a customer.",
                                         requests=[ScenarioRequest(text=user_intent, kind="other")])
        self._system = user_system_prompt(self.scenario)
        return [{"role": "system", "content": self._system},
                {"role": "user", "content": "The agent greets you: how can I help? Write your first message."}]

    def _next(self, messages: list[dict]) -> list[dict] | None:
        if self._said >= self.max_messages:
            return None  # a small model may never write the marker
        view = user_view(messages[1:])  # the agent's system prompt is not the user's business
        return [{"role": "system", "content": self._system}, *view]

    def start(self, user_intent: str) -> str:
        return self._ask(self._opening(user_intent))

    def reply(self, messages: list[dict]) -> str | None:
        ask = self._next(messages)
        return self._ask(ask) if ask is not None else _LEAVING

    async def astart(self, user_intent: str) -> str:
        """``start`` for the asyncio episode engine."""
        return await self._aask(self._opening(user_intent))

    async def areply(self, messages: list[dict]) -> str | None:
        ask = self._next(messages)
        return await self._aask(ask) if ask is not None else _LEAVING

    def _request(self, messages: list[dict]) -> dict:
        self._said += 1
        return {"messages": messages, "temperature": self.temperature, "max_tokens": self.max_tokens, "seed": self.seed}

    def _ask(self, messages: list[dict]) -> str:
        return _said(self.client.chat(**self._request(messages)))

    async def _aask(self, messages: list[dict]) -> str:
        return _said(await self.client.achat(**self._request(messages)))


_LEAVING = f"Sorry, I have to go now. {STOP_MARKER}"


def _said(reply: dict) -> str:
    # an empty answer would end nothing and teach nothing: the user is done
    return (reply.get("content") or "").strip() or STOP_MARKER
