from typing import Literal

import dagster as dg
from pydantic import Field

from agentscaler_dagster.llm import OpenAICompatibleClient


class LLMEndpoint(dg.ConfigurableResource):
    """An OpenAI-compatible server for the synthesis steps the paper gives to an LLM (tool code, edge checks).

    Used only where a stage's config asks for it; the embedded default is programmatic.
    """

    base_url: str = Field(default="http://127.0.0.1:8000/v1", description="vLLM `vllm serve`, SGLang, llama.cpp server, or a provider.")
    model: str = Field(default="", description="Model name served at base_url.")
    api_key: str = Field(default="EMPTY", description="API key; use EnvVar('OPENAI_API_KEY') for real providers.")
    structured_style: Literal["json_schema", "json_object"] = Field(default="json_schema", description="json_schema (OpenAI, vLLM, SGLang) or json_object (llama.cpp server).")
    timeout_s: float = Field(default=300.0, description="Per-request timeout.")
    max_retries: int = Field(default=3, description="Retries on transport errors and 5xx.")
    max_concurrency: int = Field(default=8, description="Requests in flight at once from one process.")

    def client(self) -> OpenAICompatibleClient:
        return OpenAICompatibleClient(
            base_url=self.base_url, model=self.model, api_key=self.api_key, timeout_s=self.timeout_s,
            max_retries=self.max_retries, max_concurrency=self.max_concurrency, structured_style=self.structured_style,
        )
