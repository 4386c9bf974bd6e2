from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import Field

from agentscaler_dagster.llm import OpenAICompatibleClient


class LLMEndpoint(dg.ConfigurableResource):
    """The one OpenAI-compatible endpoint of every LLM step (agent, user simulator, tool code, edge checks, ...).

    ``kind`` says where it points: ``programmatic`` (no model; each step uses its simulator - the
    embedded default), ``vllm`` / ``llamacpp`` (the managed server of the `vllm_server` /
    `llamacpp_server` resource, started on first use), or ``openai`` (``base_urls``: one or more
    external servers, balanced round-robin). Each step's own config says whether it uses the LLM.
    """

    kind: Literal["programmatic", "openai", "vllm", "llamacpp"] = Field(default="programmatic", description="programmatic (no model), openai (external base_urls), vllm or llamacpp (the managed server resource).")
    base_urls: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:8000/v1"], description="kind=openai: OpenAI-compatible servers (vLLM, SGLang, llama.cpp, a provider); several are balanced.")
    model: str = Field(default="", description="kind=openai: model name served at base_urls (managed servers use their served_model_name).")
    api_key: str = Field(default="EMPTY", description="API key; use EnvVar('OPENAI_API_KEY') for real providers.")
    structured_style: Literal["auto", "json_schema", "json_object"] = Field(default="auto", description="json_schema (OpenAI, vLLM, SGLang), json_object (llama.cpp server); auto: from kind.")
    timeout_s: float = Field(default=300.0, description="Per-request timeout.")
    max_retries: int = Field(default=3, description="Retries on transport errors and 5xx (the next retry goes to the next URL).")
    max_concurrency: int = Field(default=16, description="Requests in flight at once from one step (also the default episode concurrency).")

    @property
    def uses_model(self) -> bool:
        return self.kind != "programmatic"

    def client(self, *, vllm_server=None, llamacpp_server=None) -> OpenAICompatibleClient:
        """A client for this endpoint; a managed kind needs its server resource and starts it if needed."""
        if self.kind == "programmatic":
            raise ValueError(
                "the `llm` resource is programmatic (no model): set its kind to vllm, llamacpp or openai "
                "for a step that asks for an LLM"
            )
        style = self.structured_style
        if self.kind == "openai":
            urls, model = list(self.base_urls), self.model
            if not model:
                raise ValueError(f"the `llm` resource (kind=openai, base_urls={urls}) needs `model`, the name served there")
        else:
            server_resource = vllm_server if self.kind == "vllm" else llamacpp_server
            if server_resource is None:
                raise ValueError(
                    f"the `llm` resource has kind={self.kind} but this step was not given the "
                    f"`{self.kind}_server` resource; add it to the step or use kind=openai with its URL"
                )
            server = server_resource.start()
            urls, model = [server.base_url], server.served_model
        if style == "auto":
            style = "json_object" if self.kind == "llamacpp" else "json_schema"
        return OpenAICompatibleClient(
            base_url=urls, model=model, api_key=self.api_key, timeout_s=self.timeout_s,
            max_retries=self.max_retries, max_concurrency=self.max_concurrency, structured_style=style,
        )

    def describe(self) -> str:
        if self.kind == "openai":
            return f"openai:{self.model}@{','.join(self.base_urls)}"
        return self.kind
