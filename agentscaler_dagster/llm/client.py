from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import threading
import time
import urllib.parse
from typing import Any

import httpx

try:
    import orjson
except ImportError:  # pragma: no cover - a dependency; json does the same, slower
    orjson = None

from agentscaler_dagster.contracts import EncodedTools
from agentscaler_dagster.llm.transport import AsyncConnectionPool, TransportTimeout


class BackendError(RuntimeError):
    """The server could not give an answer: names the server, what was asked and the likely cause."""


# transport errors and these statuses are worth another try; 4xx other than 408/429 are the caller's fault
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class OpenAICompatibleClient:
    """A small, synchronous client for `/v1/chat/completions` with bounded concurrency, retries and timeouts.

    Thread-safe: at most ``max_concurrency`` requests are in flight across threads sharing the client.
    ``base_url`` may be a list: requests go round-robin over the servers, and a retry after a transport
    error or a 5xx goes to the next one. ``usage`` sums the servers' token counts (throughput metadata).
    ``achat`` / ``acomplete`` do the same on an asyncio loop (no thread per request), bounded by their own
    ``max_concurrency`` per loop.
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
        self._max_concurrency = max_concurrency
        self._aio: tuple | None = None  # (loop, AsyncConnectionPool, asyncio.Semaphore)
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        self._timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._connections: list[http.client.HTTPConnection] = []

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

    def _connection(self, url: str) -> tuple[http.client.HTTPConnection, str]:
        """This thread's keep-alive connection to ``url`` (standard library) and the URL's path prefix.

        Plain (non-streamed) requests go through it: at hundreds of concurrent episodes on 2 cores, httpx spent
        1.26 ms of CPU per call where this spends 0.27 (`benchmarks/bench_serving.py fake`, transport floor)."""
        connections = getattr(self._local, "connections", None)
        if connections is None:
            connections = self._local.connections = {}
        entry = connections.get(url)
        if entry is None:
            parts = urllib.parse.urlsplit(url)
            kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            entry = connections[url] = (kind(parts.hostname, parts.port, timeout=self._timeout_s), parts.path)
            with self._usage_lock:
                self._connections.append(entry[0])
        return entry

    def _post_plain(self, url: str, path: str, payload: bytes) -> tuple[int, bytes]:
        """POST on this thread's connection; a reused connection the server has closed meanwhile is opened once
        more at once (not a failure). Raises ``OSError`` / ``http.client.HTTPException`` as the transport fails."""
        conn, prefix = self._connection(url)
        headers = {**self._headers, "Content-Type": "application/json"}
        for fresh in (conn.sock is None, True):
            try:
                if conn.sock is None:
                    try:
                        conn.connect()
                    except TimeoutError as exc:
                        raise _Timeout(f"ConnectTimeout: no connection within {self._timeout_s:g} s") from exc
                conn.request("POST", prefix + path, body=payload, headers=headers)
                response = conn.getresponse()
                return response.status, response.read()
            except TimeoutError as exc:
                conn.close()
                raise _Timeout(f"ReadTimeout: no answer within {self._timeout_s:g} s") from exc
            except (OSError, http.client.HTTPException):
                conn.close()
                if fresh:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._usage_lock:
            clients, self._clients = self._clients, []
            connections, self._connections = self._connections, []
        for client in clients:
            client.close()
        for conn in connections:
            conn.close()
        self._local = threading.local()
        if self._aio is not None:
            self._aio[1].close()
            self._aio = None

    def __enter__(self) -> "OpenAICompatibleClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _chat_body(self, *, messages, tools=None, temperature=0.0, max_tokens=None, seed=None, json_schema=None,
                   extra=None, tool_choice=None, stream=False) -> dict[str, Any]:
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
        return body

    def _chat_message(self, reply) -> dict:
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
        body = self._chat_body(messages=messages, tools=tools, temperature=temperature, max_tokens=max_tokens, seed=seed,
                               json_schema=json_schema, extra=extra, tool_choice=tool_choice, stream=stream)
        return self._chat_message(self._post("/chat/completions", body, stream=stream))

    async def achat(self, **kwargs) -> dict:
        """``chat`` on the running event loop (same arguments, same result): no thread waits on the server.

        A streamed request is read on a worker thread (``stream=True`` is for watching, not for throughput)."""
        body = self._chat_body(**kwargs)
        if kwargs.get("stream"):
            return self._chat_message(await asyncio.to_thread(self._post, "/chat/completions", body, stream=True))
        return self._chat_message(await self._apost("/chat/completions", body))

    def _completion_body(self, prompt, max_tokens, temperature, stop, extra) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "prompt": prompt, "max_tokens": max_tokens, "temperature": temperature}
        if stop:
            body["stop"] = stop
        body.update(extra or {})
        return body

    def _completion(self, reply) -> dict:
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

    def complete(self, *, prompt: str, max_tokens: int, temperature: float = 0.0, stop: list[str] | None = None,
                 extra: dict | None = None) -> dict:
        """One plain completion of ``prompt`` (``/v1/completions``): ``{"text", "completion_tokens", "prompt_tokens"}``. For a
        prompt the caller renders itself, e.g. with the model's own chat template. ``prompt_tokens`` is how
        many tokens the server read the prompt as."""
        return self._completion(self._post("/completions", self._completion_body(prompt, max_tokens, temperature, stop, extra)))

    async def acomplete(self, *, prompt: str, max_tokens: int, temperature: float = 0.0, stop: list[str] | None = None,
                        extra: dict | None = None) -> dict:
        """``complete`` on the running event loop."""
        return self._completion(await self._apost("/completions", self._completion_body(prompt, max_tokens, temperature, stop, extra)))

    def _outcome(self, url: str, path: str, status: int, raw: bytes) -> tuple[dict | None, str]:
        """The parsed answer, or (None, why) when another try is worth it; a refusal raises."""
        if status in _RETRY_STATUS:
            return None, f"{url}: HTTP {status}: {_text(raw, 300)}"
        if status >= 400:
            raise BackendError(f"{url}{path} refused the request (HTTP {status}): {_text(raw, 500)}")
        try:
            return _loads(raw), ""
        except ValueError as exc:
            raise BackendError(f"{url}{path} answered with non-JSON: {_text(raw, 300)}") from exc

    def _gave_up(self, tried: list[str], path: str, last: str) -> BackendError:
        return BackendError(f"{', '.join(tried)}{path} failed after {self.max_retries + 1} attempts; last error: {last}")

    def _post(self, path: str, body: dict, *, stream: bool = False) -> dict:
        last: str = ""
        tried: list[str] = []
        payload = _encode(body)
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
                        status, raw = response.status_code, response.content
                    else:
                        status, raw = self._post_plain(url, path, payload)
                except _Timeout as exc:
                    last = str(exc)
                    continue
                except (httpx.TransportError, OSError, http.client.HTTPException) as exc:
                    last = f"{type(exc).__name__}: {exc} (is the server running at {url}?)"
                    continue
            reply, last = self._outcome(url, path, status, raw)
            if reply is not None:
                return reply
        raise self._gave_up(tried, path, last)

    def _loop_state(self) -> tuple[AsyncConnectionPool, asyncio.Semaphore]:
        """This event loop's connections and concurrency bound (a client may outlive several ``asyncio.run``)."""
        loop = asyncio.get_running_loop()
        state = self._aio
        if state is None or state[0] is not loop:
            if state is not None:
                state[1].close()
            pool = AsyncConnectionPool(timeout_s=self._timeout_s, connect_timeout_s=min(self._timeout_s, 10.0),
                                       headers=self._headers)
            state = self._aio = (loop, pool, asyncio.Semaphore(self._max_concurrency))
        return state[1], state[2]

    async def _apost(self, path: str, body: dict) -> dict:
        pool, slots = self._loop_state()
        last: str = ""
        tried: list[str] = []
        payload = _encode(body)
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            url = self.base_urls[next(self._next_url)]
            if url not in tried:
                tried.append(url)
            async with slots:
                try:
                    status, raw = await pool.post(url, path, payload)
                except TransportTimeout as exc:
                    last = str(exc)
                    continue
                except OSError as exc:
                    last = f"{type(exc).__name__}: {exc} (is the server running at {url}?)"
                    continue
            reply, last = self._outcome(url, path, status, raw)
            if reply is not None:
                return reply
        raise self._gave_up(tried, path, last)


def _encode(body: dict) -> bytes:
    """The request's JSON (orjson: a few times faster than json on the bodies every model call sends; json for
    what orjson refuses, e.g. integers over 64 bits). An episode's tools are spliced in as encoded once."""
    tools = body.get("tools")
    if isinstance(tools, EncodedTools) and len(body) > 1:
        rest = _dumps({k: v for k, v in body.items() if k != "tools"})
        return rest[:-1] + b', "tools": ' + tools.encoded + b"}"
    return _dumps(body)


def _dumps(value) -> bytes:
    if orjson is not None:
        try:
            return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            pass
    return json.dumps(value).encode("utf-8")


def _loads(raw: bytes):
    if orjson is not None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # NaN / Infinity, which json reads
    return json.loads(raw)


def _text(raw: bytes, limit: int) -> str:
    return raw[: limit * 4].decode("utf-8", errors="replace")[:limit]


class _Timeout(Exception):
    """The server took longer than the client's timeout (worth another try, like a transport error)."""


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
