"""The asyncio episode engine: the same trajectories as one episode at a time, concurrency without threads.

Real parts: a local OpenAI-compatible HTTP/1.1 server (an asyncio loop on a thread of the test: it answers
by Content-Length, by chunks, and sometimes closes the connection, as real servers do), the project's client,
the demo environment in the sandbox, the programmatic user simulator.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from agentscaler_dagster.llm import BackendError, OpenAIChatAgent, OpenAICompatibleClient
from agentscaler_dagster.rollout import OracleAgentSimulator, ScenarioUserSimulator, arun_episode, run_episode, run_rollouts
from agentscaler_dagster.sandbox import Environment
from agentscaler_dagster.tasks import sample_tasks
from agentscaler_dagster.tasks.demo_domain import build_demo_package


class ScriptedServer:
    """Answers chat requests from what the conversation holds: the agent reads two orders, then replies in text;
    a malformed call (bad JSON) and an unknown tool come up too. Every 2nd answer is chunked, every 3rd
    connection is closed by the server after its answer."""

    def __init__(self, latency: float = 0.0):
        self.latency = latency
        self.requests = 0
        self.connections = 0
        self.writers: set = set()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=512))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    @staticmethod
    def answer(body: dict) -> dict:
        turns = sum(m["role"] == "assistant" for m in body["messages"])
        order = next((m["content"] for m in body["messages"] if m["role"] == "user"), "")[:12]
        calls = {
            0: ("get_order", json.dumps({"order_id": "o-1"})),
            1: ("get_order", '{"order_id": '),  # malformed: the agent reads an error
            2: ("no_such_tool", "{}"),
            3: ("get_order", json.dumps({"order_id": order})),
        }
        if turns in calls:
            name, arguments = calls[turns]
            message = {"role": "assistant", "content": None,
                       "tool_calls": [{"id": f"c{turns}", "type": "function", "function": {"name": name, "arguments": arguments}}]}
        else:
            message = {"role": "assistant", "content": f"Done after {turns} turns."}
        return {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 3}}

    async def _handle(self, reader, writer) -> None:
        self.connections += 1
        self.writers.add(writer)
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
                body = json.loads(await reader.readexactly(length))
                self.requests += 1
                served += 1
                if self.latency:
                    await asyncio.sleep(self.latency)
                data = json.dumps(self.answer(body)).encode()
                close = served == 3
                extra = b"Connection: close\r\n" if close else b""
                if self.requests % 2:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra
                                 + b"Content-Length: %d\r\n\r\n" % len(data) + data)
                else:
                    half = len(data) // 2
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra
                                 + b"Transfer-Encoding: chunked\r\n\r\n"
                                 + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, data[:half], len(data) - half, data[half:]))
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    def stop(self) -> None:
        """Like a killed server: the port refuses, open connections are cut."""
        def close() -> None:
            self.server.close()
            for writer in self.writers:
                writer.transport.abort()
            self.loop.stop()

        self.loop.call_soon_threadsafe(close)
        self.thread.join(5)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    package = build_demo_package(tmp_path_factory.mktemp("demo-env"), from_snapshot=True)
    with Environment.load(package) as env:
        yield package, env, sample_tasks(env, n_tasks=10, seed=5, max_walk_length=3)


@pytest.fixture()
def server():
    s = ScriptedServer()
    yield s
    s.stop()


def _plain(trajectories):
    return [{**t.model_dump(mode="json"), "timings": {}} for t in trajectories]


def test_every_engine_gives_the_same_trajectories_through_a_real_server(demo, server):
    _, env, tasks = demo
    client = OpenAICompatibleClient(base_url=server.url, model="scripted", max_concurrency=32, max_retries=0)
    agent = lambda s: OpenAIChatAgent(client=client, seed=s, max_tokens=32)  # noqa: E731
    one = run_rollouts(tasks, env, agent, ScenarioUserSimulator, trials=2, seed=11, max_turns=6)
    threads = run_rollouts(tasks, env, agent, ScenarioUserSimulator, trials=2, seed=11, max_turns=6, concurrency=8,
                           engine="threads")
    loop = run_rollouts(tasks, env, agent, ScenarioUserSimulator, trials=2, seed=11, max_turns=6, concurrency=8)
    assert _plain(loop) == _plain(threads) == _plain(one)
    # the episodes really went through the tools: an observation, a malformed call, an unknown tool
    tools = [m["content"] for m in one[0].messages if m["role"] == "tool"]
    assert len(tools) == 4
    assert tools[1].startswith("Error: arguments of get_order are not valid JSON")
    assert tools[2].startswith("Error: unknown tool 'no_such_tool'")
    assert {t.termination for t in loop} <= {"user_stop", "max_turns"}
    # the server closed every 3rd connection and chunked every 2nd answer: no request failed for it
    agent_steps = sum(s["kind"] == "agent" for t in one + threads + loop for s in t.timings["steps"])
    assert client.usage["requests"] == agent_steps and server.connections > 3


def test_async_episodes_need_no_thread_each_and_keep_the_concurrency_bound(demo):
    _, env, tasks = demo
    in_flight, peak, threads_seen = [0], [0], set()

    class LoopAgent(OracleAgentSimulator):
        nonblocking = False  # only aact runs: it must be awaited, never given a thread

        async def aact(self, messages, tools):
            threads_seen.add(threading.get_ident())
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
            await asyncio.sleep(0.01)
            in_flight[0] -= 1
            return self.act(messages, tools)

    before = threading.active_count()
    got = run_rollouts(tasks, env, lambda s: LoopAgent(s), ScenarioUserSimulator, trials=3, seed=2, concurrency=12)
    assert peak[0] == 12 and len(threads_seen) == 1
    assert threading.active_count() == before
    reference = run_rollouts(tasks, env, lambda s: OracleAgentSimulator(s), ScenarioUserSimulator, trials=3, seed=2)
    assert _plain(got) == _plain(reference)


def test_a_blocking_agent_still_runs_concurrently_on_threads(demo):
    _, env, tasks = demo
    barrier = threading.Barrier(4, timeout=20)  # passes only when 4 episodes wait in act at once

    class BlockingAgent(OracleAgentSimulator):
        nonblocking = False
        met = 0

        def act(self, messages, tools):
            if BlockingAgent.met < 4:
                BlockingAgent.met += 1
                barrier.wait()
            return super().act(messages, tools)

    got = run_rollouts(tasks[:4], env, lambda s: BlockingAgent(s), ScenarioUserSimulator, trials=1, seed=0, concurrency=4)
    assert BlockingAgent.met == 4 and not barrier.broken
    assert all(t.termination != "agent_error" for t in got)


def test_run_rollouts_works_where_a_loop_already_runs(demo):
    _, env, tasks = demo

    async def inside() -> list:  # a notebook cell, an async framework
        return run_rollouts(tasks[:3], env, lambda s: OracleAgentSimulator(s), ScenarioUserSimulator, trials=1, seed=4,
                            concurrency=3)

    got = asyncio.run(inside())
    reference = run_rollouts(tasks[:3], env, lambda s: OracleAgentSimulator(s), ScenarioUserSimulator, trials=1, seed=4)
    assert _plain(got) == _plain(reference)


def test_arun_episode_equals_run_episode(demo, server):
    _, env, tasks = demo
    client = OpenAICompatibleClient(base_url=server.url, model="scripted", max_retries=0)
    sync = run_episode(tasks[0], env, OpenAIChatAgent(client=client, seed=1), ScenarioUserSimulator(1), trial=0, max_turns=6)
    loop = asyncio.run(arun_episode(tasks[0], env, OpenAIChatAgent(client=client, seed=1), ScenarioUserSimulator(1), trial=0,
                                    max_turns=6))
    assert _plain([loop]) == _plain([sync])
    assert [s["kind"] for s in loop.timings["steps"]] == [s["kind"] for s in sync.timings["steps"]]


# --- the asyncio transport's failures: named, retried where worth it ---------------------------------------


def _listener() -> socket.socket:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener


def test_async_client_names_a_server_that_is_down():
    with _listener() as probe:
        port = probe.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/v1"
    client = OpenAICompatibleClient(base_url=url, model="m", max_retries=1, backoff_s=0.01)
    with pytest.raises(BackendError, match=rf"{url}/chat/completions failed after 2 attempts; last error: .*is the server running at {url}"):
        asyncio.run(client.achat(messages=[{"role": "user", "content": "hi"}]))


def test_async_client_times_out_on_a_server_that_never_answers():
    with _listener() as listener:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        client = OpenAICompatibleClient(base_url=url, model="m", timeout_s=0.3, max_retries=1, backoff_s=0.01)
        started = time.monotonic()
        with pytest.raises(BackendError, match="failed after 2 attempts; last error: ReadTimeout: no answer within 0.3 s"):
            asyncio.run(client.achat(messages=[{"role": "user", "content": "hi"}]))
        assert time.monotonic() - started < 5


def test_async_client_retries_a_5xx_and_raises_a_refusal_at_once():
    statuses = iter([503, 200, 400])
    seen: list[int] = []
    answer = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}).encode()
    listener = _listener()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            buffer = b""
            for status in statuses:
                while b"\r\n\r\n" not in buffer:
                    buffer += conn.recv(65536)
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                seen.append(status)
                body = answer if status == 200 else b'{"error": "no"}'
                conn.sendall(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))

    threading.Thread(target=serve, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    client = OpenAICompatibleClient(base_url=url, model="m", max_retries=2, backoff_s=0.01)

    async def both():
        first = await client.achat(messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(BackendError, match=r"refused the request \(HTTP 400\)"):
            await client.achat(messages=[{"role": "user", "content": "again"}])
        return first

    try:
        assert asyncio.run(both())["content"] == "ok"
        assert seen == [503, 200, 400]  # one retry for the 503, none for the 400; one kept-alive connection
    finally:
        listener.close()


def test_a_killed_server_mid_run_is_retried_and_the_run_resumes(demo, tmp_path: Path):
    """The server dies after some episodes: those still running end with a BackendError; a second run on a
    live server plays exactly those again (keyed by task and trial), keeping the finished ones."""
    _, env, tasks = demo
    server = ScriptedServer(latency=0.02)
    client = OpenAICompatibleClient(base_url=server.url, model="scripted", max_concurrency=4, max_retries=0, timeout_s=5)
    out = tmp_path / "t.jsonl"

    def stop_midway(done: int, total: int) -> None:
        if done == 6:
            server.stop()

    first = run_rollouts(tasks, env, lambda s: OpenAIChatAgent(client=client, seed=s), ScenarioUserSimulator, trials=2,
                         seed=3, max_turns=6, concurrency=4, out_path=out, backend_retries=1, progress=stop_midway)
    failed = [t for t in first if t.termination == "agent_error"]
    assert failed and all("BackendError" in t.error and server.url in t.error for t in failed)
    assert all(t.timings.get("backend_attempts") == 2 for t in failed)
    alive = ScriptedServer()
    try:
        client2 = OpenAICompatibleClient(base_url=alive.url, model="scripted", max_concurrency=4, max_retries=0)
        played: list[int] = []

        def agent(seed):
            played.append(seed)
            return OpenAIChatAgent(client=client2, seed=seed)

        second = run_rollouts(tasks, env, agent, ScenarioUserSimulator, trials=2, seed=3, max_turns=6, concurrency=4,
                              out_path=out)
        assert len(played) == len(failed)
        assert not [t for t in second if t.termination == "agent_error"]
        keys = [(t.task_id, t.trial) for t in second]
        assert len(set(keys)) == len(keys) == 20
    finally:
        alive.stop()


def test_the_evaluation_plays_a_served_model_on_the_engine_as_one_at_a_time(demo, server, tmp_path: Path):
    from agentscaler_dagster.evaluation import evaluate

    _, env, tasks = demo
    client = OpenAICompatibleClient(base_url=server.url, model="scripted", max_concurrency=8, max_retries=0)
    names: list[str] = []

    def agent(name, path):
        return OpenAIChatAgent(client=client, max_tokens=16)

    def run(concurrency: int):
        before = {t.name for t in threading.enumerate()}
        report = evaluate({"base": tmp_path / "b", "phase2": tmp_path / "p"}, tasks[:5], {env.domain_id: env},
                          lambda seed: ScenarioUserSimulator(seed=seed), trials_k=2, seed=1, run_episode=run_episode,
                          agent_factory=agent, max_turns=6, concurrency=concurrency)
        names.extend({t.name for t in threading.enumerate()} - before)
        return [e.model_dump(exclude={"seconds"}) for e in report.episodes]

    one, many = run(1), run(4)
    assert many == one and len(one) == 20
    assert all(e["tool_calls"] == 4 and e["error"] is None for e in one)
    assert not [n for n in names if n.startswith("eval")]  # no thread per episode


def test_sandbox_workers_follow_the_concurrency():
    from agentscaler_dagster.resources import RolloutBackend

    assert [RolloutBackend().sandbox_copies(c) for c in (1, 16, 64, 65, 256, 1024)] == [1, 1, 1, 2, 4, 4]
    assert RolloutBackend(sandbox_workers=3).sandbox_copies(1) == 3


def test_a_subclass_that_overrides_act_alone_is_not_bypassed_by_the_parents_aact(demo, server):
    _, env, tasks = demo
    client = OpenAICompatibleClient(base_url=server.url, model="scripted", max_retries=0)
    seen: list[str] = []

    class Instrumented(OpenAIChatAgent):
        def act(self, messages, tools):
            seen.append(threading.current_thread().name)
            return super().act(messages, tools)

    got = run_rollouts(tasks[:4], env, lambda s: Instrumented(client=client, seed=s), ScenarioUserSimulator, trials=1,
                       seed=0, max_turns=3, concurrency=4)
    assert len(seen) == sum(s["kind"] == "agent" for t in got for s in t.timings["steps"]) > 0
    assert all(name.startswith("episode-blocking") for name in seen)


def test_a_role_that_changes_its_messages_never_changes_the_record(demo, server):
    """Roles that declare they only read get the record's messages; a subclass that overrides act does not
    inherit that, so what it does to its messages stays in its copies."""
    _, env, tasks = demo
    client = OpenAICompatibleClient(base_url=server.url, model="scripted", max_retries=0)

    class Scribbler(OpenAIChatAgent):
        def act(self, messages, tools):
            reply = super().act(messages, tools)
            for m in messages:
                m["content"] = "scribbled"
            return reply

        async def aact(self, messages, tools):
            reply = await super().aact(messages, tools)
            for m in messages:
                m["content"] = "scribbled"
            return reply

    scribbled = run_rollouts(tasks[:3], env, lambda s: Scribbler(client=client, seed=s), ScenarioUserSimulator,
                             trials=1, seed=0, max_turns=6, concurrency=3)
    assert all(len(t.messages) > 6 for t in scribbled)
    assert not any(m.get("content") == "scribbled" for t in scribbled for m in t.messages)


def test_a_request_carries_the_episodes_tools_encoded_once_and_only_when_needed():
    from agentscaler_dagster.contracts import EncodedTools
    from agentscaler_dagster.llm.client import _encode

    tools = EncodedTools([{"type": "function", "function": {"name": "get_order", "description": "Bestellung für ü",
                                                            "parameters": {"type": "object", "properties": {}}}}])
    assert tools._encoded is None  # a programmatic agent never sends them: nothing is encoded
    messages = [{"role": "user", "content": "where is o-1?"}]
    first = _encode({"model": "m", "messages": messages, "tools": tools})
    assert json.loads(first) == {"model": "m", "messages": messages, "tools": list(tools)}
    encoded = tools._encoded
    assert _encode({"model": "m", "messages": messages, "tools": tools}) == first and tools._encoded is encoded
    # what orjson refuses (an integer over 64 bits) goes through json
    big = EncodedTools([{"type": "function", "function": {"name": "f", "parameters": {"maximum": 2 ** 70}}}])
    assert json.loads(_encode({"model": "m", "tools": big}))["tools"] == list(big)
