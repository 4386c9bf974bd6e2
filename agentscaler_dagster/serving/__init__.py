"""Managed model servers (vLLM on CPU or GPU, llama.cpp) behind one OpenAI-compatible interface."""

from agentscaler_dagster.serving.commands import LlamaCppSettings, VLLMSettings, default_vllm_python, llamacpp_command, vllm_command
from agentscaler_dagster.serving.process import ManagedServer, ServerStartError, free_port, group_alive

__all__ = [
    "LlamaCppSettings", "ManagedServer", "ServerStartError", "VLLMSettings", "default_vllm_python", "free_port", "group_alive",
    "llamacpp_command", "vllm_command",
]
