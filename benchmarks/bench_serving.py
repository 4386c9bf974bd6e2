"""Serving throughput: the episode engine against model servers.

Run:
  .venv/bin/python benchmarks/bench_serving.py fake [--episodes 2000] [--concurrency 256] [--latency 0.05]
  .venv/bin/python benchmarks/bench_serving.py vllm [--model-source gemma3-270m] [--episodes 16]

fake  A local OpenAI-compatible server (another process, one asyncio loop) that answers every
      request after ``latency`` seconds: five tool calls (get_order on the demo domain), then a text reply,
      so each episode makes exactly 6 model calls (max_turns=6) and 5 sandboxed tool calls. Ideal time: what
      an engine with no cost of its own would take, ceil(episodes / concurrency) x 6 x latency: each of the
      ``concurrency`` slots plays its episodes one after another, 6 x latency each, so with 2,000 episodes on
      256 slots some slot plays 8 (2.40 s; the fluid bound episodes x 6 x latency / concurrency, 2.34 s, would
      need episodes split across slots, and is reported beside it). The episode engines side by side at ``concurrency``: ``threads``
      (a thread per episode, the baseline) and ``asyncio`` (one event loop, the default), with the sandbox
      workers the trajectories asset would load, ``--repeat`` runs of each, alternated, and the median ratio
      (the machine is noisy). Also run at concurrency 1 on a few episodes, and the engine's own time per tool
      call (the wall time minus the time spent waiting on the server, with and without the sandboxed tool
      call itself). Then the transport floor, side by side: the same number of model calls at
      the same concurrency with nothing else to do (no environment, user or trajectory), through the project's
      client on one event loop (as the engine sends them), and from a thread each through the client and
      through the standard library's ``http.client`` (one keep-alive connection per thread); the first's
      wall / ideal is about the least the engine could reach on this machine. And the same floor with the
      calls grouped into episodes (``concurrency`` players, each playing 6 calls in a row per episode, nothing
      else): the ideal's makespan as this machine's timers and sockets reach it. And one run of the asyncio
      engine with the tool calls answered in this process from a memo of the sandbox's answers: the
      sandbox's share of the ratio (its process round trips, its workers' CPU).
vllm  Real episodes of the demo domain through the managed vLLM CPU server at concurrency 1 and 16
      (episodes/min, generated tokens/s), then the same episodes through in-process transformers
      generation (TransformersAgent), the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentscaler_dagster.llm import OpenAIChatAgent, OpenAICompatibleClient  # noqa: E402
from agentscaler_dagster.rollout import EnvironmentPool, ScenarioUserSimulator, run_rollouts  # noqa: E402
from agentscaler_dagster.rollout.episode import play_all, run_on_loop  # noqa: E402
from agentscaler_dagster.sandbox import Environment  # noqa: E402
from agentscaler_dagster.serving import free_port  # noqa: E402
from agentscaler_dagster.tasks import sample_tasks  # noqa: E402
from agentscaler_dagster.tasks.demo_domain import build_demo_package  # noqa: E402


def serve_fake(port: int, latency: float) -> None:
    """HTTP/1.1 keep-alive on one asyncio loop: the server's own CPU per request stays small (no thread per
    connection, no JSON parse of the request), so the run measures the engine, not the fake."""
    import asyncio

    def answer(calls: int) -> bytes:
        if calls < 5:
            message = {"role": "assistant", "content": None, "tool_calls": [{"id": f"call_{calls}", "type": "function",
                       "function": {"name": "get_order", "arguments": json.dumps({"order_id": "o-1"})}}]}
        else:
            message = {"role": "assistant", "content": "Your order o-1 is pending."}
        return _http_ok({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 100, "completion_tokens": 10}})

    answers = [answer(n) for n in range(6)]
    models = _http_ok({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    class Fake(asyncio.Protocol):
        # a protocol with a timer per request, no stream reader or coroutine: less of the harness's CPU
        def connection_made(self, transport) -> None:
            self.transport, self.buffer = transport, b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buffer[:end]
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if len(self.buffer) < end + 4 + length:
                    return
                body, self.buffer = self.buffer[end + 4:end + 4 + length], self.buffer[end + 4 + length:]
                if head.startswith(b"GET"):
                    self.transport.write(models)
                    continue
                # the assistant turns so far, counted without parsing the body
                calls = body.count(b'"role":"assistant"') + body.count(b'"role": "assistant"')
                loop.call_later(latency, self.reply, answers[min(calls, 5)])

        def reply(self, answer: bytes) -> None:
            if not self.transport.is_closing():
                self.transport.write(answer)

    async def main() -> None:
        nonlocal loop
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Fake, "127.0.0.1", port, backlog=2048)
        async with server:
            await server.serve_forever()

    loop = None
    try:  # the lightest loop there is: the fake's CPU is taken from the engine on a 2-core machine
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


def _http_ok(payload: dict) -> bytes:
    data = json.dumps(payload).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data)


def _demo(tmp: Path, n_tasks: int, copies: int = 1):
    package = build_demo_package(tmp / "env", from_snapshot=True)
    envs = [Environment.load(package).__enter__() for _ in range(copies)]
    tasks = sample_tasks(envs[0], n_tasks=n_tasks, seed=0, max_walk_length=3)
    return (envs if copies > 1 else envs[0]), tasks


def bench_fake(args) -> dict:
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "_serve", str(port), str(args.latency)])
    try:
        import httpx

        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        if not args.sandboxes:
            from agentscaler_dagster.resources import RolloutBackend

            args.sandboxes = RolloutBackend().sandbox_copies(args.concurrency)
        with tempfile.TemporaryDirectory() as tmp:
            envs, tasks = _demo(Path(tmp), 50, copies=args.sandboxes)
            for env in envs if isinstance(envs, list) else [envs]:
                env.warm()  # steady state: a worker's start is not the engine's overhead
            trials = max(1, args.episodes // len(tasks))
            rows = []
            runs = [(1, 1, "threads")] + [(args.concurrency, trials, engine) for _ in range(args.repeat)
                                           for engine in args.engines.split(",")]
            if "asyncio" in args.engines.split(","):
                runs.append((args.concurrency, trials, IN_PROCESS))
            for concurrency, n_trials, engine in runs:
                client = OpenAICompatibleClient(base_url=f"http://127.0.0.1:{port}/v1", model="fake", max_concurrency=concurrency, timeout_s=60)
                waits: list[float] = []

                class Timed(OpenAIChatAgent):
                    # it only reads the conversation, like its parent: without saying so, the engine would hand
                    # it a private copy of the messages every turn (the rule for subclasses that override act)
                    reads_messages_only = True

                    def act(self, messages, tools):
                        t0 = time.perf_counter()
                        try:
                            return super().act(messages, tools)
                        finally:
                            waits.append(time.perf_counter() - t0)

                    async def aact(self, messages, tools):
                        t0 = time.perf_counter()
                        try:
                            return await super().aact(messages, tools)
                        finally:
                            waits.append(time.perf_counter() - t0)

                use = tasks if concurrency > 1 else tasks[:20]
                others = _children_cpu()
                started, cpu = time.perf_counter(), time.process_time()
                where = _InProcessTools(envs) if engine == IN_PROCESS else envs
                episodes = run_rollouts(use, where, lambda s: Timed(client=client, seed=s), ScenarioUserSimulator,
                                        trials=n_trials, seed=0, max_turns=6, concurrency=concurrency,
                                        engine="asyncio" if engine == IN_PROCESS else engine)
                wall = time.perf_counter() - started
                cpu = time.process_time() - cpu  # this process only: the engine (the server and sandboxes are others)
                others = {k: round(v - others.get(k, 0.0), 2) for k, v in _children_cpu().items()}
                calls = client.usage["requests"]
                tool_steps = [s["s"] for e in episodes for s in e.timings["steps"] if s["kind"] == "tool"]
                if calls != 6 * len(episodes):
                    raise RuntimeError(f"every episode should make 6 model calls, got {calls} for {len(episodes)}")
                ideal, fluid = ideal_time(len(episodes), 6 * args.latency, concurrency)
                row = {
                    "engine": engine if concurrency > 1 else "sequential",
                    "concurrency": concurrency, "sandboxes": args.sandboxes, "episodes": len(episodes), "model_calls": calls,
                    "calls_per_episode": round(calls / len(episodes), 2), "wall_s": round(wall, 2), "ideal_s": round(ideal, 2),
                    "ratio_to_ideal": round(wall / ideal, 3), "ratio_to_fluid_ideal": round(wall / fluid, 3),
                    "engine_cpu_s": round(cpu, 2), "engine_cpu_ms_per_episode": round(1000 * cpu / len(episodes), 3),
                    "server_cpu_s": others.get("server"), "sandbox_cpu_s": others.get("sandboxes"),
                    "tool_call_ms_mean": round(1000 * statistics.mean(tool_steps), 3),
                    "tool_call_ms_p50": round(1000 * statistics.median(tool_steps), 3),
                    "terminations": {t: sum(e.termination == t for e in episodes) for t in {e.termination for e in episodes}},
                }
                if concurrency == 1:
                    # wall time not spent waiting on the server, per tool call: the engine's own overhead
                    row["engine_ms_per_tool_call"] = round(1000 * (wall - sum(waits)) / max(1, len(tool_steps)), 3)
                    # the same without the sandbox's own time (the jailed worker round trip, benchmarked in bench_runtime)
                    row["engine_ms_per_tool_call_excl_sandbox"] = round(1000 * (wall - sum(waits) - sum(tool_steps)) / max(1, len(tool_steps)), 3)
                print(json.dumps(row), flush=True)
                rows.append(row)
                client.close()
            for env in envs if isinstance(envs, list) else [envs]:
                env.__exit__(None, None, None)
        summary = {}
        for engine in args.engines.split(","):
            ratios = sorted(r["ratio_to_ideal"] for r in rows if r["engine"] == engine)
            fluid = sorted(r["ratio_to_fluid_ideal"] for r in rows if r["engine"] == engine)
            summary[engine] = {"runs": len(ratios), "ratio_to_ideal_median": statistics.median(ratios),
                               "ratio_to_ideal_range": [ratios[0], ratios[-1]],
                               "ratio_to_fluid_ideal_median": statistics.median(fluid)}
        print(json.dumps({"summary": summary}), flush=True)
        calls = rows[-1]["model_calls"]
        floors = [transport_floor(port, calls, args.concurrency, args.latency, kind)
                  for kind in ("episodes, model calls only", "client (asyncio)", "client", "http.client")]
        for floor in floors:
            print(json.dumps(floor), flush=True)
        return {"rows": rows, "summary": summary, "transport_floor": floors}
    finally:
        server.terminate()
        server.wait()


IN_PROCESS = "asyncio, tools in-process"


class _InProcessTools:
    """The environment with its tool calls answered from a memo of the sandbox's own answers, in this process:
    the engine without the sandbox's process round trips and the workers' CPU on the same 2 cores (a floor, as the
    transport floor is for the model calls). Only for read-only calls (the benchmark's get_order)."""

    def __init__(self, envs):
        self._env = EnvironmentPool(envs) if isinstance(envs, list) else envs
        self._memo: dict = {}

    def __getattr__(self, name: str):
        return getattr(self._env, name)

    def call(self, state: dict, name: str, arguments: dict):
        key = (name, json.dumps(arguments, sort_keys=True))
        if key not in self._memo:
            result = self._env.call(state, name, arguments)
            if not result.ok or result.state != state:
                raise ValueError(f"{name} is not a read-only call: it cannot be answered from a memo")
            self._memo[key] = result
        return self._memo[key]

    async def acall(self, state: dict, name: str, arguments: dict):
        return self.call(state, name, arguments)


def _children_cpu() -> dict:
    """CPU seconds so far of the fake server and of the sandbox workers (this process's children)."""
    try:
        import psutil
    except ImportError:
        return {}
    me = psutil.Process()
    cpu = {"server": 0.0, "sandboxes": 0.0}
    for child in me.children(recursive=True):
        try:
            times = child.cpu_times()
            cpu["server" if "_serve" in child.cmdline() else "sandboxes"] += times.user + times.system
        except psutil.Error:
            pass
    return cpu


def ideal_time(jobs: int, job_s: float, concurrency: int) -> tuple[float, float]:
    """(the least time ``jobs`` of ``job_s`` seconds each take on ``concurrency`` slots, the fluid bound).

    A slot plays its jobs one after another and a job never leaves its slot, so some slot plays
    ceil(jobs / concurrency) of them; ``jobs * job_s / concurrency`` is reached only when ``concurrency``
    divides ``jobs``."""
    return -(-jobs // concurrency) * job_s, jobs * job_s / concurrency


def transport_floor(port: int, calls: int, concurrency: int, latency: float, kind: str) -> dict:
    """``calls`` chat requests, ``concurrency`` at a time, with nothing else to do: the transport's own ceiling.
    ``client (asyncio)``: the project's client's ``achat`` from one event loop, as the asyncio engine sends them;
    ``client`` and ``http.client``: blocking requests from ``concurrency`` threads."""
    import http.client
    import threading
    from concurrent.futures import ThreadPoolExecutor

    messages = [{"role": "system", "content": "You are a support agent."}, {"role": "user", "content": "Where is my order?"}]
    body = json.dumps({"model": "fake", "messages": messages, "max_tokens": 64}).encode()
    client = OpenAICompatibleClient(base_url=f"http://127.0.0.1:{port}/v1", model="fake", max_concurrency=concurrency,
                                    timeout_s=60)
    local = threading.local()

    def one(_: int) -> None:
        if kind == "client":
            client.chat(messages=messages, max_tokens=64)
            return
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        local.conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        json.loads(local.conn.getresponse().read())

    async def many() -> None:
        pending = iter(range(calls))

        async def sender() -> None:
            for _ in pending:
                await client.achat(messages=messages, max_tokens=64)

        await asyncio.gather(*(sender() for _ in range(concurrency)))

    async def episode(_task, _trial, _executor) -> None:
        for _ in range(6):
            await client.achat(messages=messages, max_tokens=64)

    started, cpu = time.perf_counter(), time.process_time()
    if kind == "client (asyncio)":
        run_on_loop(many())
    elif kind == "episodes, model calls only":
        # the engine's own scheduler (play_all) with episodes that do nothing but their 6 model calls
        run_on_loop(play_all([(None, i) for i in range(calls // 6)], episode, concurrency))
    else:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(calls)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    client.close()
    if kind == "episodes, model calls only":
        ideal, fluid = ideal_time(calls // 6, 6 * latency, concurrency)
    else:
        ideal, fluid = ideal_time(calls, latency, concurrency)
    return {"transport_floor": kind, "concurrency": concurrency, "model_calls": calls, "wall_s": round(wall, 2),
            "ideal_s": round(ideal, 2), "ratio_to_ideal": round(wall / ideal, 3),
            "ratio_to_fluid_ideal": round(wall / fluid, 3), "cpu_s": round(cpu, 2),
            "cpu_ms_per_call": round(1000 * cpu / calls, 3)}


def bench_vllm(args) -> dict:
    from agentscaler_dagster.evaluation.agent import TransformersAgent
    from agentscaler_dagster.resources import VLLMServer
    from agentscaler_dagster.sft.base_model import prepare_base_model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        model_dir = prepare_base_model(tmp / "model", source=args.model_source)
        print(f"model {args.model_source} ready in {time.perf_counter() - t0:.1f} s", flush=True)
        env, tasks = _demo(tmp, args.episodes)
        resource = VLLMServer(model=str(model_dir), cpu_kvcache_space_gib=args.kv_gib, log_dir=str(tmp))
        server = resource.start()
        print(f"vLLM ready in {server.startup_s} s", flush=True)
        try:
            for concurrency in (1, 16):
                use = tasks[: args.episodes if concurrency > 1 else max(2, args.episodes // 4)]
                client = OpenAICompatibleClient(base_url=server.base_url, model=server.served_model, max_concurrency=concurrency, timeout_s=600)
                started = time.perf_counter()
                episodes = run_rollouts(use, env, lambda s: OpenAIChatAgent(client=client, max_tokens=args.max_tokens, seed=s),
                                        ScenarioUserSimulator, trials=1, seed=0, max_turns=args.max_turns, concurrency=concurrency)
                wall = time.perf_counter() - started
                row = {"backend": "vllm-cpu", "concurrency": concurrency, "episodes": len(episodes), "wall_s": round(wall, 1),
                       "episodes_per_min": round(60 * len(episodes) / wall, 2), "generated_tokens": client.usage["completion_tokens"],
                       "generated_tokens_per_s": round(client.usage["completion_tokens"] / wall, 1)}
                print(json.dumps(row), flush=True)
                rows.append(row)
        finally:
            resource.stop()
        agent = TransformersAgent(model_dir, max_new_tokens=args.max_tokens, name="transformers")
        generated = [0]
        original = agent.generate_text

        def counted(prompt):
            text = original(prompt)
            generated[0] += agent.last_generation["new_tokens"]
            return text

        agent.generate_text = counted
        use = tasks[: max(2, args.episodes // 4)]
        started = time.perf_counter()
        episodes = run_rollouts(use, env, lambda s: agent, ScenarioUserSimulator, trials=1, seed=0, max_turns=args.max_turns)
        wall = time.perf_counter() - started
        row = {"backend": "transformers (in-process)", "concurrency": 1, "episodes": len(episodes), "wall_s": round(wall, 1),
               "episodes_per_min": round(60 * len(episodes) / wall, 2), "generated_tokens": generated[0],
               "generated_tokens_per_s": round(generated[0] / wall, 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
        env.__exit__(None, None, None)
    return {"startup_s": server.startup_s, "rows": rows}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        serve_fake(int(sys.argv[2]), float(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="which", required=True)
    fake = sub.add_parser("fake")
    fake.add_argument("--episodes", type=int, default=2000)
    fake.add_argument("--concurrency", type=int, default=256)
    fake.add_argument("--latency", type=float, default=0.05)
    fake.add_argument("--repeat", type=int, default=3, help="runs of each engine at --concurrency (alternated; the machine is noisy)")
    fake.add_argument("--engines", default="threads,asyncio", help="episode engines at --concurrency, side by side")
    fake.add_argument("--sandboxes", type=int, default=0,
                      help="loaded copies of the environment (sandbox workers); 0: as the trajectories asset picks for --concurrency")
    vllm = sub.add_parser("vllm")
    vllm.add_argument("--model-source", default="gemma3-270m", choices=["gemma3-270m", "tiny"])
    vllm.add_argument("--episodes", type=int, default=16)
    vllm.add_argument("--max-tokens", type=int, default=32)
    vllm.add_argument("--max-turns", type=int, default=2)
    vllm.add_argument("--kv-gib", type=int, default=2)
    args = parser.parse_args()
    print(f"# {platform.node()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    result = bench_fake(args) if args.which == "fake" else bench_vllm(args)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
