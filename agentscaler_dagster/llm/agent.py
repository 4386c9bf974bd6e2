from __future__ import annotations

import json

from agentscaler_dagster.llm.client import OpenAICompatibleClient


class OpenAIChatAgent:
    """The agent role played by a model behind an OpenAI-compatible server (native tool calling).

    Pass ``client`` to share one client (one concurrency bound, one usage count) across episodes.
    Tool calls come back as the server parsed them; arguments that are not JSON or name an unknown
    tool are left for the episode loop, which records them as observations.
    """

    reads_messages_only = True  # it only encodes them: the episode need not copy the conversation per turn

    def __init__(
        self,
        *,
        base_url: str | list[str] = "",
        model: str = "",
        api_key: str = "EMPTY",
        temperature: float = 0.0,
        max_tokens: int = 512,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        seed: int | None = None,
        stream: bool = False,
        extra: dict | None = None,
        client: OpenAICompatibleClient | None = None,
    ):
        if client is None and not base_url:
            raise ValueError("OpenAIChatAgent needs a base_url or a client")
        self.client = client or OpenAICompatibleClient(
            base_url=base_url, model=model, api_key=api_key, timeout_s=timeout_s, max_retries=max_retries
        )
        self.name = f"openai:{self.client.model}"
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.stream = stream
        self.extra = extra

    @property
    def sampling(self) -> dict:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, "seed": self.seed}

    def clone(self) -> "OpenAIChatAgent":
        """Another agent on the same client (one connection pool, one usage count): for concurrent episodes."""
        return OpenAIChatAgent(client=self.client, temperature=self.temperature, max_tokens=self.max_tokens,
                               seed=self.seed, stream=self.stream, extra=self.extra)

    def reset(self, *, seed: int) -> None:
        """Start a new episode sampled with ``seed`` (the evaluation derives it per task and trial)."""
        self.seed = seed

    def _request(self, messages: list[dict], tools: list[dict]) -> dict:
        return {"messages": messages, "tools": tools, "temperature": self.temperature, "max_tokens": self.max_tokens,
                "seed": self.seed, "stream": self.stream, "extra": self.extra}

    def act(self, messages: list[dict], tools: list[dict]) -> dict:
        return _assistant_message(self.client.chat(**self._request(messages, tools)))

    async def aact(self, messages: list[dict], tools: list[dict]) -> dict:
        """``act`` for the asyncio episode engine."""
        return _assistant_message(await self.client.achat(**self._request(messages, tools)))


def _assistant_message(reply: dict) -> dict:
    message: dict = {"role": "assistant", "content": reply.get("content")}
    calls = []
    for index, call in enumerate(reply.get("tool_calls") or []):
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments or {}, sort_keys=True)
        calls.append({
            "id": call.get("id") or f"call_{index}",
            "type": "function",
            "function": {"name": function.get("name", ""), "arguments": arguments},
        })
    if calls:
        message["tool_calls"] = calls
    return message
