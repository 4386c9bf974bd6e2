from __future__ import annotations

import itertools
import json
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
    ``base_url`` may be a list: requests go round-robin over the servers, and a retry after a transport
    error or a 5xx goes to the next one. ``usage`` sums the servers' token counts (throughput metadata).
    """

    def __init__(
        self,
        *,
        base_url: str | list[str],
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
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls or not all(isinstance(u, str) and u.strip() for u in urls):
            raise ValueError(f"base_url must be a URL or a non-empty list of URLs, got {base_url!r}")
        self.base_urls = [u.rstrip("/") for u in urls]
        self.base_url = self.base_urls[0] if len(self.base_urls) == 1 else ", ".join(self.base_urls)
        self._next_url = itertools.cycle(range(len(self.base_urls)))
        self._usage_lock = threading.Lock()
        self.usage = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self.model = model
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._local = threading.local()
        self._clients: list[httpx.Client] = []

    @property
    def _http(self) -> httpx.Client:
        """This thread's connections. One shared pool scans all its connections on every request (httpcore),
        which at hundreds of concurrent episodes costs more than the request itself."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(timeout=self._timeout, headers=self._headers,
                                  limits=httpx.Limits(max_connections=len(self.base_urls), max_keepalive_connections=len(self.base_urls)))
            self._local.client = client
            with self._usage_lock:
                self._clients.append(client)
        return client

    def close(self) -> None:
        with self._usage_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
        self._local = threading.local()

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
        tool_choice: str | dict | None = None,
        stream: bool = False,
    ) -> dict:
        """One chat completion; returns the first choice's message (OpenAI format).

        ``stream=True`` reads the server-sent deltas and joins them (content and tool calls) into the same
        message shape, so callers do not care which way it came.
        """
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature}
        if tools:
            body["tools"] = tools
        if tool_choice is not None:
            body["tool_choice"] = tool_choice
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
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        reply = self._post("/chat/completions", body, stream=stream)
        usage = reply.get("usage") if isinstance(reply, dict) else None
        if isinstance(usage, dict):
            with self._usage_lock:
                self.usage["requests"] += 1
                self.usage["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
                self.usage["completion_tokens"] += int(usage.get("completion_tokens") or 0)
        try:
            return reply["choices"][0]["message"]
        except (KeyError, IndexError, TypeError) as exc:
            raise BackendError(f"{self.base_url}: reply without choices[0].message: {str(reply)[:300]}") from exc

    def complete(self, *, prompt: str, max_tokens: int, temperature: float = 0.0, stop: list[str] | None = None,
                 extra: dict | None = None) -> dict:
        """One plain completion of ``prompt`` (``/v1/completions``): ``{"text", "completion_tokens", "prompt_tokens"}``. For a
        prompt the caller renders itself, e.g. with the model's own chat template. ``prompt_tokens`` is how
        many tokens the server read the prompt as."""
        body: dict[str, Any] = {"model": self.model, "prompt": prompt, "max_tokens": max_tokens, "temperature": temperature}
        if stop:
            body["stop"] = stop
        body.update(extra or {})
        reply = self._post("/completions", body)
        usage = reply.get("usage") if isinstance(reply, dict) else None
        tokens = int((usage or {}).get("completion_tokens") or 0)
        with self._usage_lock:
            self.usage["requests"] += 1
            self.usage["prompt_tokens"] += int((usage or {}).get("prompt_tokens") or 0)
            self.usage["completion_tokens"] += tokens
        try:
            return {"text": reply["choices"][0]["text"], "completion_tokens": tokens,
                    "prompt_tokens": int((usage or {}).get("prompt_tokens") or 0)}
        except (KeyError, IndexError, TypeError) as exc:
            raise BackendError(f"{self.base_url}: completion without choices[0].text: {str(reply)[:300]}") from exc

    def _post(self, path: str, body: dict, *, stream: bool = False) -> dict:
        last: str = ""
        tried: list[str] = []
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            url = self.base_urls[next(self._next_url)]
            if url not in tried:
                tried.append(url)
            with self._slots:
                try:
                    if stream:
                        with self._http.stream("POST", url + path, json=body) as response:
                            if response.status_code < 400:
                                return _join_stream(response.iter_lines(), url + path)
                            response.read()
                    else:
                        response = self._http.post(url + path, json=body)
                except httpx.TransportError as exc:
                    last = f"{type(exc).__name__}: {exc} (is the server running at {url}?)"
                    continue
            if response.status_code in _RETRY_STATUS:
                last = f"{url}: HTTP {response.status_code}: {response.text[:300]}"
                continue
            if response.status_code >= 400:
                raise BackendError(f"{url}{path} refused the request (HTTP {response.status_code}): {response.text[:500]}")
            try:
                return response.json()
            except ValueError as exc:
                raise BackendError(f"{url}{path} answered with non-JSON: {response.text[:300]}") from exc
        raise BackendError(
            f"{', '.join(tried)}{path} failed after {self.max_retries + 1} attempts; last error: {last}"
        )


def _join_stream(lines, where: str) -> dict:
    """Server-sent chat deltas joined into one non-streamed reply (tool-call pieces joined by index)."""
    content: list[str] = []
    calls: dict[int, dict] = {}
    usage = None
    finish = None
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise BackendError(f"{where}: stream chunk is not JSON: {data[:200]}") from exc
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            finish = choice.get("finish_reason") or finish
            delta = choice.get("delta") or {}
            if delta.get("content"):
                content.append(delta["content"])
            for piece in delta.get("tool_calls") or []:
                call = calls.setdefault(piece.get("index", len(calls)), {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                if piece.get("id"):
                    call["id"] = piece["id"]
                function = piece.get("function") or {}
                call["function"]["name"] += function.get("name") or ""
                call["function"]["arguments"] += function.get("arguments") or ""
    message: dict = {"role": "assistant", "content": "".join(content) or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return {"choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage}
