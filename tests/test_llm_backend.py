"""The OpenAI-compatible backend (the path vLLM takes) against a real llama.cpp server.

Real: `python -m llama_cpp.server` serving the Gemma 3 270M GGUF on 127.0.0.1, the project's client and
agent, a real sandboxed environment for one episode. The managed vLLM server (CPU build) has its own
tests in test_serving_vllm.py; both speak the same protocol.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from conftest import free_port as _free_port

from agentscaler_dagster.llm import BackendError, OpenAIChatAgent, OpenAICompatibleClient

pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is installed by scripts/test.sh")


@pytest.fixture(scope="module")
def server(llamacpp_server):
    return llamacpp_server


def test_chat_completion(server):
    with OpenAICompatibleClient(base_url=server, model="gemma3-270m", timeout_s=120) as client:
        message = client.chat(messages=[{"role": "user", "content": "Say hello."}], max_tokens=16, seed=0)
    assert message["role"] == "assistant"
    assert isinstance(message["content"], str) and message["content"].strip()


def test_structured_output_follows_the_schema(server):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "nights": {"type": "integer"}},
        "required": ["city", "nights"],
        "additionalProperties": False,
    }
    with OpenAICompatibleClient(base_url=server, model="gemma3-270m", structured_style="json_object") as client:
        message = client.chat(
            messages=[{"role": "user", "content": "Book 3 nights in Lisbon. Answer as JSON."}],
            json_schema=schema, max_tokens=48, seed=0,
        )
    answer = json.loads(message["content"])
    assert set(answer) == {"city", "nights"} and isinstance(answer["nights"], int)


def test_agent_episode_through_the_server(server, tmp_path: Path):
    from agentscaler_dagster.rollout import ScenarioUserSimulator, run_episode
    from agentscaler_dagster.sandbox import Environment
    from agentscaler_dagster.tasks import sample_tasks
    from agentscaler_dagster.tasks.demo_domain import build_demo_package

    package = build_demo_package(tmp_path / "env", seed=0)
    agent = OpenAIChatAgent(base_url=server, model="gemma3-270m", max_tokens=48, seed=0)
    with Environment.load(package) as env:
        task = sample_tasks(env, n_tasks=1, seed=0, max_walk_length=2)[0]
        trajectory = run_episode(task, env, agent, ScenarioUserSimulator(seed=0), trial=0, max_turns=2)
    roles = [m["role"] for m in trajectory.messages]
    assert roles[:2] == ["system", "user"] and "assistant" in roles
    assert trajectory.termination in {"user_stop", "max_turns"}, trajectory.error
    assert trajectory.final_state_hash


def test_llm_user_plays_the_scenario_through_the_server(server, tmp_path: Path):
    """The LLM user end to end: scenario prompt, the oracle agent on the other side, the stop marker."""
    from agentscaler_dagster.llm import OpenAIUserSimulator
    from agentscaler_dagster.llm.user import user_system_prompt
    from agentscaler_dagster.resources import LLMEndpoint, RolloutBackend
    from agentscaler_dagster.rollout import STOP_MARKER, OracleAgentSimulator, run_episode
    from agentscaler_dagster.sandbox import Environment
    from agentscaler_dagster.tasks import sample_tasks
    from agentscaler_dagster.tasks.demo_domain import build_demo_package

    package = build_demo_package(tmp_path / "env", seed=0)
    client = LLMEndpoint(kind="openai", base_urls=[server], model="gemma3-270m").client()
    user = RolloutBackend(user="llm").user_factory(client)(0)
    assert isinstance(user, OpenAIUserSimulator)
    user.max_tokens, user.max_messages = 40, 4
    with Environment.load(package) as env:
        task = next(t for t in sample_tasks(env, n_tasks=12, seed=0) if any(f.hidden for f in t.scenario.facts))
        trajectory = run_episode(task, env, OracleAgentSimulator(0, error_rate=0.0), user, trial=0, max_turns=12)
    prompt = user_system_prompt(task.scenario)
    hidden = [f for f in task.scenario.facts if f.hidden]
    assert task.scenario.persona in prompt and STOP_MARKER in prompt
    assert all(f"- {f.name}: {f.said}" in prompt.split("only if the agent asks")[1] for f in hidden)
    assert not any(a.name in prompt for a in task.gold_actions), "the user never sees the tools"
    users = [m["content"] for m in trajectory.messages if m["role"] == "user"]
    assert users and all(isinstance(u, str) and u.strip() for u in users)
    assert trajectory.termination in {"user_stop", "max_turns"}, trajectory.error
    assert trajectory.user_simulator == "openai-user:gemma3-270m"


def test_unreachable_server_fails_with_a_clear_error():
    port = _free_port()
    client = OpenAICompatibleClient(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1, backoff_s=0.01, timeout_s=2)
    with pytest.raises(BackendError, match=rf"127.0.0.1:{port}.*2 attempts.*is the server running"):
        client.chat(messages=[{"role": "user", "content": "hi"}])


def test_rollout_backend_builds_the_openai_agent(server):
    from agentscaler_dagster.resources import LLMEndpoint, RolloutBackend

    client = LLMEndpoint(kind="openai", base_urls=[server], model="gemma3-270m").client()
    backend = RolloutBackend(agent="llm")
    agent = backend.agent_factory(client)(3)
    assert isinstance(agent, OpenAIChatAgent) and agent.seed == 3 and agent.client is client
    assert backend.episode_concurrency(client_concurrency := 16) == client_concurrency
    assert RolloutBackend().episode_concurrency(16) == 1
    reply = agent.act([{"role": "user", "content": "Hello"}], [])
    assert reply["role"] == "assistant"
    with pytest.raises(ValueError, match="needs a client"):
        backend.agent_factory(None)


def test_llm_code_generator_goes_through_validation_and_falls_back(server, tmp_path: Path):
    """A 270M base model cannot write a valid module: every attempt is recorded and the fallback is used."""
    from agentscaler_dagster.contracts import Domain
    from agentscaler_dagster.envgen import build_environment
    from agentscaler_dagster.llm import LLMCodeGenerator
    from agentscaler_dagster.tasks.demo_domain import TOOL_SPECS

    domain = Domain(domain_id="demo-retail", label="retail orders", tool_ids=[s.tool_id for s in TOOL_SPECS])
    client = OpenAICompatibleClient(base_url=server, model="gemma3-270m")
    generator = LLMCodeGenerator(client, max_tokens=160)
    manifest = build_environment(domain, list(TOOL_SPECS), tmp_path / "env", seed=0, code_generator=generator, max_attempts=2)
    assert len(manifest.generator_attempts) == 2
    assert all(a.get("problems") or a.get("error") for a in manifest.generator_attempts)
    assert manifest.generator == "programmatic" and manifest.usable


def test_llm_edge_verifier_answers_on_schema(server):
    from agentscaler_dagster.llm import LLMEdgeVerifier
    from agentscaler_dagster.tasks.demo_domain import TOOL_SPECS

    tools = {t.name: t for t in TOOL_SPECS}
    verifier = LLMEdgeVerifier(OpenAICompatibleClient(base_url=server, model="gemma3-270m", structured_style="json_object"))
    names = sorted(tools)
    decision = verifier(tools[names[0]], tools[names[1]])
    assert isinstance(decision, bool)
    recorded = verifier.decisions[(names[0], names[1])]
    assert not recorded["reason"].startswith("kept: verification failed"), recorded


def test_llm_edge_verifier_keeps_edges_when_the_server_is_down():
    from agentscaler_dagster.llm import LLMEdgeVerifier
    from agentscaler_dagster.tasks.demo_domain import TOOL_SPECS

    a, b = TOOL_SPECS[:2]
    client = OpenAICompatibleClient(base_url=f"http://127.0.0.1:{_free_port()}/v1", model="m", max_retries=0, timeout_s=2)
    verifier = LLMEdgeVerifier(client)
    assert verifier(a, b) is True
    assert verifier.decisions[(a.name, b.name)]["reason"].startswith("kept: verification failed (BackendError")


def test_llm_policy_writer_writes_the_prose_and_keeps_the_rules(server, tmp_path: Path):
    """The policy through the real server: the model's prose is kept, the programmatic rules follow it."""
    import json as _json

    from agentscaler_dagster.contracts import Domain
    from agentscaler_dagster.envgen import build_environment
    from agentscaler_dagster.llm import LLMPolicyWriter
    from agentscaler_dagster.tasks.demo_domain import TOOL_SPECS

    domain = Domain(domain_id="demo-retail", label="retail orders", tool_ids=[s.tool_id for s in TOOL_SPECS])
    client = OpenAICompatibleClient(base_url=server, model="gemma3-270m")
    build_environment(domain, list(TOOL_SPECS), tmp_path / "plain", seed=0)
    build_environment(domain, list(TOOL_SPECS), tmp_path / "llm", seed=0,
                      policy_writer=LLMPolicyWriter(client, max_tokens=96))
    plain = _json.loads((tmp_path / "plain" / "policy.json").read_text())
    written = _json.loads((tmp_path / "llm" / "policy.json").read_text())
    assert written["rules"] == plain["rules"]  # what the tools enforce does not depend on the prose
    if written["generator"].startswith("llm:"):
        assert written["text"] != plain["text"]
        assert all(rule["text"] in written["text"] for rule in plain["rules"])
    else:  # the model wrote nothing: the programmatic text stays, and the manifest says why
        assert written["text"] == plain["text"] and "gemma3-270m" in written["generator"]
    assert (tmp_path / "llm" / "policy.md").read_text() == written["text"]


def test_llm_policy_writer_failure_keeps_the_programmatic_policy(tmp_path: Path):
    from agentscaler_dagster.contracts import Domain
    from agentscaler_dagster.envgen import build_environment
    from agentscaler_dagster.llm import LLMPolicyWriter
    from agentscaler_dagster.tasks.demo_domain import TOOL_SPECS

    domain = Domain(domain_id="demo-retail", label="retail orders", tool_ids=[s.tool_id for s in TOOL_SPECS])
    dead = OpenAICompatibleClient(base_url=f"http://127.0.0.1:{_free_port()}/v1", model="m", max_retries=0, timeout_s=2)
    build_environment(domain, list(TOOL_SPECS), tmp_path / "llm", seed=0, policy_writer=LLMPolicyWriter(dead))
    policy = __import__("json").loads((tmp_path / "llm" / "policy.json").read_text())
    assert policy["generator"].startswith("programmatic (llm:m failed") and policy["rules"]


def test_plain_requests_reuse_one_connection_and_reopen_one_the_server_closed():
    """Plain requests go on this thread's keep-alive connection; when the server has closed it between two
    requests (an idle timeout, a restart), the next request opens a new one at once: no retry, no backoff."""
    import threading

    answer = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}).encode()
    accepted: list[int] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            with conn:
                for served in range(2):  # two answers per connection, then the server hangs up
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if not chunk:
                        break
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
                    while len(body) < length:
                        body += conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                                 + str(len(answer)).encode() + b"\r\n\r\n" + answer)

    threading.Thread(target=serve, daemon=True).start()
    client = OpenAICompatibleClient(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=0, timeout_s=5)
    try:
        started = time.monotonic()
        replies = [client.chat(messages=[{"role": "user", "content": f"hi {i}"}]) for i in range(5)]
        assert [r["content"] for r in replies] == ["ok"] * 5  # max_retries=0: no request needed a retry
        assert len(accepted) == 3  # 2 + 2 + 1 requests: one connection per pair, reopened when the server hung up
        assert time.monotonic() - started < 2
    finally:
        client.close()
        listener.close()
