"""OpenAI-compatible chat backends (vLLM `vllm serve`, SGLang, llama.cpp server, any provider)."""

from agentscaler_dagster.llm.client import BackendError, OpenAICompatibleClient
from agentscaler_dagster.llm.agent import OpenAIChatAgent

__all__ = ["BackendError", "OpenAIChatAgent", "OpenAICompatibleClient"]
