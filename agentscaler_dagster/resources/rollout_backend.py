from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import Field

from agentscaler_dagster.llm import OpenAICompatibleClient


class RolloutBackend(dg.ConfigurableResource):
    """Who plays the simulated user and the agent during rollouts, and how many episodes run at once.

    ``agent=programmatic`` is the embedded default: an oracle agent simulator that knows the task's gold
    steps and injects recorded mistakes (a simulator, not a model); ``user=programmatic`` is the rule-based
    tau-bench-style user of the task's scenario. ``llm`` gives either role to the `llm` endpoint resource -
    the one place where the server is configured.
    """

    agent: Literal["programmatic", "llm"] = Field(default="programmatic", description="programmatic simulator, or the `llm` endpoint resource.")
    user: Literal["programmatic", "llm"] = Field(default="programmatic", description="programmatic user of the task's scenario (answers what is asked from its facts), or the `llm` endpoint given the scenario.")
    agent_error_rate: float = Field(default=0.15, ge=0.0, le=1.0, description="Programmatic agent: chance that an episode gets one injected mistake (its kind is recorded), so the filters have work.")
    temperature: float = Field(default=0.0, description="Sampling temperature of the agent (agent=llm).")
    max_tokens: int = Field(default=512, description="Generation limit per agent turn (agent=llm).")
    concurrency: int = Field(default=0, description="Episodes at once; 0: the endpoint's max_concurrency for agent=llm, 1 for the programmatic agent.")
    backend_retries: int = Field(default=2, description="Times an episode is played again after the model server failed under it.")
    sandbox_workers: int = Field(default=0, ge=0, description="Loaded copies of the domain's environment (one sandbox worker each) that tool calls share; 0: one per 64 concurrent episodes, at most 4 (one worker runs one call at a time).")

    def sandbox_copies(self, concurrency: int) -> int:
        if self.sandbox_workers:
            return self.sandbox_workers
        return max(1, min(4, -(-concurrency // 64)))

    def episode_concurrency(self, endpoint_concurrency: int) -> int:
        if self.concurrency:
            return self.concurrency
        # the programmatic agent spends its time in the sandbox, which serialises tool calls anyway
        return max(1, endpoint_concurrency) if self.uses_llm else 1

    def agent_factory(self, client: OpenAICompatibleClient | None = None):
        """A callable ``seed -> AgentPolicy``; ``client`` (from the `llm` resource) for agent=llm, shared by all episodes."""
        if self.agent == "programmatic":
            from agentscaler_dagster.rollout import OracleAgentSimulator

            return lambda seed: OracleAgentSimulator(seed=seed, error_rate=self.agent_error_rate)
        if client is None:
            raise ValueError("rollout_backend.agent=llm needs a client from the `llm` resource (its kind must not be programmatic)")
        from agentscaler_dagster.llm import OpenAIChatAgent

        return lambda seed: OpenAIChatAgent(client=client, temperature=self.temperature, max_tokens=self.max_tokens, seed=seed)

    @property
    def uses_llm(self) -> bool:
        return "llm" in (self.agent, self.user)

    def user_factory(self, client: OpenAICompatibleClient | None = None):
        """A callable ``seed -> UserSimulator``; ``client`` (from the `llm` resource) for user=llm."""
        if self.user == "programmatic":
            from agentscaler_dagster.rollout import ScenarioUserSimulator

            return lambda seed: ScenarioUserSimulator(seed=seed)
        if client is None:
            raise ValueError("rollout_backend.user=llm needs a client from the `llm` resource (its kind must not be programmatic)")
        from agentscaler_dagster.llm import OpenAIUserSimulator

        return lambda seed: OpenAIUserSimulator(client=client, seed=seed)
