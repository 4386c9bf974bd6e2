"""OpenAI-compatible chat backends (vLLM `vllm serve`, SGLang, llama.cpp server, any provider)."""

from agentscaler_dagster.llm.client import BackendError, OpenAICompatibleClient
from agentscaler_dagster.llm.agent import OpenAIChatAgent
from agentscaler_dagster.llm.envgen import LLMCodeGenerator, LLMEdgeVerifier, LLMPolicyWriter
from agentscaler_dagster.llm.user import OpenAIUserSimulator, user_view

__all__ = ["BackendError", "LLMCodeGenerator", "LLMEdgeVerifier", "LLMPolicyWriter", "OpenAIChatAgent", "OpenAICompatibleClient", "OpenAIUserSimulator", "user_view"]
