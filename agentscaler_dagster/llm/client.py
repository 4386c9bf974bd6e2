from __future__ import annotations

import threading
import time
from typing import Any

import httpx


class BackendError(RuntimeError):
    """The server could not give an answer: names the server, what was asked and the likely cause."""


# transport errors and these statuses are worth another try; 4xx other than 408/429 are the caller's fault
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class OpenAICompatibleClient:
    """A small, synchronous client for `/v1/chat/completions` with bounded concurrency, retries and timeouts.

    Thread-safe: at most ``max_concurrency`` requests are in flight across threads sharing the client.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str = "EMPTY",
        timeout_s: float = 120.0,
        max_retries: int = 3,
        max_concurrency: int = 8,
        backoff_s: float = 0.5,
        structured_style: str = "json_schema",
    ):
        if structured_style not in ("json_schema", "json_object"):
            raise ValueError(f"structured_style must be json_schema (OpenAI, vLLM, SGLang) or json_object (llama.cpp server), got {structured_style!r}")
        self.structured_style = structured_style
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            headers={"Authorization": f"Bearer {api_key}"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "OpenAICompatibleClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def chat(
        self,
        *,
        messages: list[dict],
        tools: list[dict] | None = None,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        seed: int | None = None,
        json_schema: dict | None = None,
        extra: dict | None = None,
    ) -> dict:
        """One chat completion; returns the first choice's message (OpenAI format)."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature}
        if tools:
            body["tools"] = tools
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if seed is not None:
            body["seed"] = seed
        if json_schema is not None:
            # llama-cpp-python's server takes the schema beside type json_object; the others follow OpenAI
            if self.structured_style == "json_object":
                body["response_format"] = {"type": "json_object", "schema": json_schema}
            else:
                body["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": json_schema, "strict": True}}
        body.update(extra or {})
        reply = self._post("/chat/completions", body)
        try:
            return reply["choices"][0]["message"]
        except (KeyError, IndexError, TypeError) as exc:
            raise BackendError(f"{self.base_url}: reply without choices[0].message: {str(reply)[:300]}") from exc

    def _post(self, path: str, body: dict) -> dict:
        last: str = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            with self._slots:
                try:
                    response = self._http.post(path, json=body)
                except httpx.TransportError as exc:
                    last = f"{type(exc).__name__}: {exc} (is the server running at {self.base_url}?)"
                    continue
            if response.status_code in _RETRY_STATUS:
                last = f"HTTP {response.status_code}: {response.text[:300]}"
                continue
            if response.status_code >= 400:
                raise BackendError(f"{self.base_url}{path} refused the request (HTTP {response.status_code}): {response.text[:500]}")
            try:
                return response.json()
            except ValueError as exc:
                raise BackendError(f"{self.base_url}{path} answered with non-JSON: {response.text[:300]}") from exc
        raise BackendError(f"{self.base_url}{path} failed after {self.max_retries + 1} attempts; last error: {last}")
