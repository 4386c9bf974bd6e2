from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import Field


class RolloutBackend(dg.ConfigurableResource):
    """Who plays the simulated user and the agent during rollouts.

    ``programmatic`` is the embedded default: scripted simulators that need no model (they are
    simulators, not models). ``openai`` talks to any OpenAI-compatible server (vLLM, SGLang,
    llama.cpp server) for the agent.
    """

    kind: Literal["programmatic", "openai"] = Field(default="programmatic", description="programmatic simulators or an OpenAI-compatible server.")
    agent_error_rate: float = Field(default=0.15, description="Programmatic agent: chance of a realistic mistake per step, so the filters have work.")
    base_url: str = Field(default="http://127.0.0.1:8000/v1", description="OpenAI-compatible server (kind=openai).")
    model: str = Field(default="", description="Model name served at base_url (kind=openai).")
    api_key: str = Field(default="EMPTY", description="API key; use EnvVar('OPENAI_API_KEY') for real providers.")
    temperature: float = Field(default=0.0, description="Sampling temperature for the agent (kind=openai).")
    timeout_s: float = Field(default=120.0, description="Per-request timeout (kind=openai).")
    max_retries: int = Field(default=3, description="Retries on transport errors and 5xx (kind=openai).")

    def agent_factory(self):
        """A callable ``seed -> AgentPolicy``."""
        if self.kind == "programmatic":
            from agentscaler_dagster.rollout import ProgrammaticAgentSimulator

            return lambda seed: ProgrammaticAgentSimulator(seed=seed, error_rate=self.agent_error_rate)
        from agentscaler_dagster.llm import OpenAIChatAgent

        return lambda seed: OpenAIChatAgent(
            base_url=self.base_url,
            model=self.model,
            api_key=self.api_key,
            temperature=self.temperature,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            seed=seed,
        )

    def user_factory(self):
        """A callable ``seed -> UserSimulator``; the scripted user serves both kinds for now."""
        from agentscaler_dagster.rollout import ScriptedUserSimulator

        return lambda seed: ScriptedUserSimulator(seed=seed)

    @property
    def backend_name(self) -> str:
        return "programmatic-simulator" if self.kind == "programmatic" else f"openai:{self.model}@{self.base_url}"
