"""Dagster resources: where artifacts go, the LLM endpoint and its managed servers, who plays user and agent, how training launches."""

from agentscaler_dagster.resources.artifacts import ArtifactStore
from agentscaler_dagster.resources.llm_endpoint import LLMEndpoint
from agentscaler_dagster.resources.phase_plan import PhasePlan
from agentscaler_dagster.resources.rollout_backend import RolloutBackend
from agentscaler_dagster.resources.serving import LlamaCppServer, VLLMServer
from agentscaler_dagster.resources.trainer import DeepSpeedTrainer

__all__ = ["ArtifactStore", "DeepSpeedTrainer", "LLMEndpoint", "LlamaCppServer", "PhasePlan", "RolloutBackend", "VLLMServer"]
