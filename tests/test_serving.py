"""Managed servers and concurrent, resumable rollouts.

Real: the llama.cpp server process (`python -m llama_cpp.server` on the Gemma 3 270M GGUF) for the
lifecycle - start, health, stop, failure, a killed parent - and the Dagster instance that owns it; the
demo environment in the sandbox and the programmatic simulators for concurrency and resume, with a
run killed by SIGKILL in a child process. The vLLM server is in test_serving_vllm.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest

from agentscaler_dagster.resources import LLMEndpoint, LlamaCppServer, VLLMServer
from agentscaler_dagster.rollout import OracleAgentSimulator, ScenarioUserSimulator, run_rollouts
from agentscaler_dagster.sandbox import Environment
from agentscaler_dagster.serving import ManagedServer, ServerStartError, VLLMSettings, free_port, group_alive, vllm_command
from agentscaler_dagster.tasks import sample_tasks
from agentscaler_dagster.tasks.demo_domain import build_demo_package


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_dead(pid: int, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.2)
    return False


# --- the vLLM command line -------------------------------------------------------------------------


def test_vllm_command_cpu_and_gpu_differ_only_in_the_memory_knob(tmp_path: Path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "chat_template.jinja").write_text("{{ messages }}")
    python = sys.executable
    cpu, cpu_env = vllm_command(VLLMSettings(model=str(model), python=python, cpu_kvcache_space_gib=1, data_parallel_size=2,
                                             extra_args=["--max-num-batched-tokens", "4096"]), host="127.0.0.1", port=8123)
    assert cpu[:3] == [python, "-m", "vllm.entrypoints.openai.api_server"]
    assert cpu[cpu.index("--chat-template") + 1] == str(model / "chat_template.jinja")
    assert cpu[cpu.index("--tool-call-parser") + 1] == "hermes" and "--enable-auto-tool-choice" in cpu
    assert cpu[cpu.index("--data-parallel-size") + 1] == "2" and cpu[-2:] == ["--max-num-batched-tokens", "4096"]
    assert cpu_env["VLLM_CPU_KVCACHE_SPACE"] == "1" and "--gpu-memory-utilization" not in cpu
    gpu, gpu_env = vllm_command(VLLMSettings(model=str(model), python=python, device="gpu", gpu_memory_utilization=0.5,
                                             tensor_parallel_size=2), host="127.0.0.1", port=8123)
    assert gpu[gpu.index("--gpu-memory-utilization") + 1] == "0.5" and "VLLM_CPU_KVCACHE_SPACE" not in gpu_env
    assert gpu[gpu.index("--tensor-parallel-size") + 1] == "2"


def test_vllm_command_names_what_is_missing(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        vllm_command(VLLMSettings(model=str(tmp_path / "nowhere")), host="127.0.0.1", port=1)
    with pytest.raises(FileNotFoundError, match="setup_vllm.sh"):
        vllm_command(VLLMSettings(model=str(tmp_path), python=str(tmp_path / "no-python")), host="127.0.0.1", port=1)


# --- lifecycle of a real server ----------------------------------------------------------------------


llamacpp = pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is installed by scripts/test.sh")


def test_server_starts_healthy_and_stops_without_orphans(tmp_path: Path):
    resource = LlamaCppServer(log_dir=str(tmp_path))
    server = resource.start()
    pid = server.pid
    assert server.running and server.startup_s is not None and server.startup_s < 120
    assert resource.start() is server  # one server per resource, started once
    import httpx

    assert httpx.get(f"{server.base_url}/models", timeout=5).status_code == 200
    resource.stop()
    assert _wait_dead(pid), "the server outlived stop()"
    assert resource.info() == {"server": "llamacpp", "started": False}


def test_a_server_that_exits_at_start_fails_with_its_log(tmp_path: Path):
    command = [sys.executable, "-c", "import sys; print('cannot load the weights'); sys.exit(3)"]
    server = ManagedServer(command, host="127.0.0.1", port=free_port(), served_model="m", log_path=tmp_path / "s.log", name="broken")
    with pytest.raises(ServerStartError, match=r"(?s)broken exited with code 3 before http://127.0.0.1:\d+/v1/models.*cannot load the weights"):
        server.start()


def test_a_server_that_never_answers_times_out_and_is_stopped(tmp_path: Path):
    # a process group of two sleepers: both must be gone after the timeout
    command = ["bash", "-c", "sleep 300 & sleep 300"]
    server = ManagedServer(command, host="127.0.0.1", port=free_port(), served_model="m", startup_timeout_s=2,
                           log_path=tmp_path / "s.log", name="silent")
    with pytest.raises(ServerStartError, match=r"silent did not answer .* within 2 s"):
        server.start()
    assert server.last_pid and not group_alive(server.last_pid), "a sleeper of the timed-out server is still running"
    assert server.pid is None and not server.running


def test_a_server_started_from_a_thread_that_ended_keeps_serving(tmp_path: Path):
    # its parent-death signal follows the starting thread: a server started from a pool's thread was stopped
    # as soon as that thread ended (a plain HTTP server stands in for the model server: only the lifecycle counts)
    import threading

    import httpx

    (tmp_path / "www" / "v1").mkdir(parents=True)
    (tmp_path / "www" / "v1" / "models").write_text('{"data": []}')
    port = free_port()
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path / "www")]
    server = ManagedServer(command, host="127.0.0.1", port=port, served_model="m", log_path=tmp_path / "s.log", name="static")
    starter = threading.Thread(target=server.start)
    starter.start()
    starter.join()
    try:
        assert server.startup_s is not None, server.log_tail()
        time.sleep(0.5)  # the signal, if it comes, comes at once
        assert server.running, f"the server exited with {server._proc.returncode} after its starting thread ended"
        assert httpx.get(f"{server.base_url}/models", timeout=5).status_code == 200
    finally:
        server.stop()
    assert _wait_dead(server.last_pid)


def test_a_killed_parent_takes_its_server_along(tmp_path: Path):
    script = textwrap.dedent(f"""
        import sys, time
        from agentscaler_dagster.resources import LlamaCppServer
        server = LlamaCppServer(log_dir={str(tmp_path)!r}).start()
        print(server.pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        assert _alive(pid)
    finally:
        parent.kill()  # SIGKILL: no atexit, no teardown - only the kernel's parent-death signal is left
        parent.wait()
    assert _wait_dead(pid), "the server outlived its killed parent"


# --- the Dagster resource owns the server --------------------------------------------------------------


def _asset_that_uses_the_server(fail: bool, pids: list):
    @dg.asset
    def uses_llm(llm: LLMEndpoint, llamacpp_server: LlamaCppServer, vllm_server: VLLMServer):
        client = llm.client(vllm_server=vllm_server, llamacpp_server=llamacpp_server)
        pids.append(llamacpp_server.start().pid)
        assert client.base_urls == [llamacpp_server.start().base_url]
        if fail:
            raise RuntimeError("the step failed after the server started")
        return dg.MaterializeResult(metadata={"server": dg.MetadataValue.json(llamacpp_server.info())})

    return uses_llm


@pytest.mark.parametrize("fail", [False, True])
def test_dagster_stops_the_server_after_success_and_failure(fail: bool, tmp_path: Path):
    pids: list[int] = []
    resources = {"llm": LLMEndpoint(kind="llamacpp"), "llamacpp_server": LlamaCppServer(log_dir=str(tmp_path)), "vllm_server": VLLMServer()}
    result = dg.materialize([_asset_that_uses_the_server(fail, pids)], resources=resources, raise_on_error=False)
    assert result.success is (not fail)
    assert len(pids) == 1 and _wait_dead(pids[0]), "the step ended but its server is still running"
    if not fail:
        info = result.asset_materializations_for_node("uses_llm")[0].metadata["server"].value
        assert info["server"] == "llamacpp" and info["startup_s"] > 0 and info["served_model"] == "agent"


_CANCELLED_RUN = """
import sys, time
import dagster as dg
from agentscaler_dagster.resources import LLMEndpoint, LlamaCppServer, VLLMServer

@dg.asset
def long_step(llm: LLMEndpoint, llamacpp_server: LlamaCppServer, vllm_server: VLLMServer):
    llm.client(vllm_server=vllm_server, llamacpp_server=llamacpp_server)
    print(llamacpp_server.start().pid, flush=True)
    time.sleep(600)

result = dg.materialize([long_step], raise_on_error=False, resources={
    "llm": LLMEndpoint(kind="llamacpp"), "llamacpp_server": LlamaCppServer(log_dir=sys.argv[1]), "vllm_server": VLLMServer()})
print("teardown done; run success:", result.success, flush=True)
"""


def test_a_cancelled_run_stops_its_server(tmp_path: Path):
    # SIGINT is how Dagster interrupts a run in its process; the step's teardown must stop the server
    run = subprocess.Popen([sys.executable, "-c", _CANCELLED_RUN, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    pid = int(run.stdout.readline())
    assert _alive(pid)
    run.send_signal(signal.SIGINT)
    rest = run.communicate(timeout=120)[0]
    assert not _alive(pid)
    assert "teardown done; run success: False" in rest  # stopped by the resource's teardown, not by the process exit


def test_the_endpoint_says_what_is_missing():
    with pytest.raises(ValueError, match="programmatic"):
        LLMEndpoint().client()
    with pytest.raises(ValueError, match="vllm_server"):
        LLMEndpoint(kind="vllm").client()
    with pytest.raises(ValueError, match="needs `model`"):
        LLMEndpoint(kind="openai", base_urls=["http://127.0.0.1:9/v1"]).client()


# --- concurrent episodes, written at once, resumed after a kill --------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    package = build_demo_package(tmp_path_factory.mktemp("demo-env"), from_snapshot=True)
    with Environment.load(package) as env:
        yield package, env, sample_tasks(env, n_tasks=8, seed=3, max_walk_length=3)


def _plain(trajectories):
    return [{**t.model_dump(mode="json"), "timings": {}} for t in trajectories]


def test_concurrent_rollouts_equal_sequential_ones(demo, tmp_path: Path):
    _, env, tasks = demo
    agent = lambda s: OracleAgentSimulator(s, error_rate=0.3)  # noqa: E731
    one = run_rollouts(tasks, env, agent, ScenarioUserSimulator, trials=2, seed=7)
    many = run_rollouts(tasks, env, agent, ScenarioUserSimulator, trials=2, seed=7, concurrency=6, out_path=tmp_path / "t.jsonl")
    assert _plain(many) == _plain(one)
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert sorted((json.loads(x)["task_id"], json.loads(x)["trial"]) for x in lines) == sorted((t.task_id, t.trial) for t in one)
    package, _, _ = demo
    with Environment.load(package) as second:  # a second sandbox worker: tool calls take whichever is free
        pooled = run_rollouts(tasks, [env, second], agent, ScenarioUserSimulator, trials=2, seed=7, concurrency=6)
    assert _plain(pooled) == _plain(one)


_KILLED_RUN = """
import sys, time
from agentscaler_dagster.rollout import OracleAgentSimulator, ScenarioUserSimulator, run_rollouts
from agentscaler_dagster.sandbox import Environment
from agentscaler_dagster.tasks import sample_tasks

class SlowAgent(OracleAgentSimulator):
    nonblocking = False  # it sleeps: the asyncio engine gives its calls threads

    def act(self, messages, tools):
        time.sleep(0.05)  # a model's latency, so the kill lands mid-run
        return super().act(messages, tools)

with Environment.load(sys.argv[1]) as env:
    tasks = sample_tasks(env, n_tasks=8, seed=3, max_walk_length=3)
    run_rollouts(tasks, env, lambda s: SlowAgent(s, error_rate=0.3), ScenarioUserSimulator, trials=2, seed=7,
                 concurrency=3, out_path=sys.argv[2])
"""


def test_a_killed_run_resumes_without_loss_or_duplicates(demo, tmp_path: Path):
    package, env, tasks = demo
    out = tmp_path / "trajectories.jsonl"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, str(package), str(out)])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 5):
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    before = [json.loads(x) for x in out.read_text().splitlines() if x.strip().endswith("}")]
    assert 5 <= len(before) < 16, f"the kill did not land mid-run ({len(before)} of 16 written)"
    played: list[str] = []

    def agent(seed):
        played.append(seed)
        return OracleAgentSimulator(seed, error_rate=0.3)

    resumed = run_rollouts(tasks, env, agent, ScenarioUserSimulator, trials=2, seed=7, concurrency=3, out_path=out)
    assert len(played) == 16 - len(before)  # only the missing episodes were played
    keys = [(t.task_id, t.trial) for t in resumed]
    assert len(keys) == len(set(keys)) == 16
    on_disk = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted((d["task_id"], d["trial"]) for d in on_disk) == sorted(keys)
    reference = run_rollouts(tasks, env, lambda s: OracleAgentSimulator(s, error_rate=0.3), ScenarioUserSimulator, trials=2, seed=7)
    assert _plain(resumed) == _plain(reference)


def test_a_server_that_accepts_but_never_answers_times_out_with_the_url():
    import socket

    from agentscaler_dagster.llm import BackendError, OpenAICompatibleClient

    with socket.socket() as listener:  # accepts connections (the kernel's backlog) and never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        client = OpenAICompatibleClient(base_url=url, model="m", timeout_s=0.5, max_retries=1, backoff_s=0.01)
        started = time.monotonic()
        with pytest.raises(BackendError, match=rf"{url}/chat/completions failed after 2 attempts; last error: ReadTimeout"):
            client.chat(messages=[{"role": "user", "content": "hi"}])
        assert time.monotonic() - started < 5


def test_the_trajectories_asset_on_the_programmatic_default_resumes_its_own_file(demo, tmp_path: Path):
    from agentscaler_dagster.artifacts import ArtifactLayout
    from agentscaler_dagster.assets.partitions import domain_partitions
    from agentscaler_dagster.assets.rollouts import trajectories
    from agentscaler_dagster.definitions import default_resources
    from agentscaler_dagster.tasks import write_tasks

    _, env, tasks = demo
    layout = ArtifactLayout(str(tmp_path))
    build_demo_package(layout.environment(env.domain_id), from_snapshot=True)
    write_tasks(tasks, layout.tasks(env.domain_id) / "tasks.jsonl")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(domain_partitions.name, [env.domain_id])
    resources = {k: v for k, v in default_resources(str(tmp_path)).items() if k != "pipes_subprocess_client"}
    run_config = {"ops": {"trajectories": {"config": {"trials": 2}}}}
    first = dg.materialize([trajectories], instance=instance, partition_key=env.domain_id, resources=resources, run_config=run_config)
    path = layout.trajectories(env.domain_id) / "trajectories.jsonl"
    written = path.read_text()
    metadata = first.asset_materializations_for_node("trajectories")[0].metadata
    assert metadata["backend"].value == "programmatic-simulator" and metadata["concurrency"].value == 1
    assert metadata["trajectories"].value == len(written.splitlines()) == 2 * len(tasks)
    assert "server" not in metadata
    # a second run finds every (task, trial) on disk: nothing is played again, the file is unchanged
    dg.materialize([trajectories], instance=instance, partition_key=env.domain_id, resources=resources, run_config=run_config)
    assert path.read_text() == written


def test_the_model_user_sees_the_conversation_from_its_side():
    from agentscaler_dagster.llm import user_view

    messages = [
        {"role": "user", "content": "My order o-1 has not arrived."},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_order", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "get_order", "content": '{"status": "pending"}'},
        {"role": "assistant", "content": "It is still pending. Shall I cancel it?"},
    ]
    assert user_view(messages) == [
        {"role": "assistant", "content": "My order o-1 has not arrived."},
        {"role": "user", "content": "It is still pending. Shall I cancel it?"},
    ]
    with pytest.raises(ValueError, match="user=llm needs a client"):
        from agentscaler_dagster.resources import RolloutBackend

        RolloutBackend(user="llm").user_factory(None)


_KILLED_EVALUATION = """
import sys, time
from pathlib import Path
from agentscaler_dagster.evaluation import evaluate
from agentscaler_dagster.rollout import OracleAgentSimulator, ScenarioUserSimulator, run_episode
from agentscaler_dagster.sandbox import Environment
from agentscaler_dagster.tasks import sample_tasks

class SlowOracle(OracleAgentSimulator):
    def act(self, messages, tools):
        time.sleep(0.05)  # a model's latency, so the kill lands mid-run
        return super().act(messages, tools)

with Environment.load(sys.argv[1]) as env:
    tasks = sample_tasks(env, n_tasks=6, seed=3, max_walk_length=3)
    evaluate({"base": Path("base"), "phase2": Path("phase2")}, tasks, {env.domain_id: env},
             lambda seed: ScenarioUserSimulator(seed=seed), trials_k=2, seed=7, run_episode=run_episode,
             agent_factory=lambda name, path: SlowOracle(1 if name == "base" else 2, error_rate=0.5),
             episodes_path=Path(sys.argv[2]))
"""


def _counting_agents():
    """An agent factory for ``evaluate`` (oracle agents, a different seed per model) with the models it loaded
    and one entry per episode its agents started."""
    loaded: list[str] = []
    played: list[int] = []

    class Counted(OracleAgentSimulator):
        def act(self, messages, tools):
            if len(messages) <= 2:
                played.append(1)
            return super().act(messages, tools)

    def factory(name, path):
        loaded.append(name)
        return Counted(1 if name == "base" else 2, error_rate=0.5)

    return factory, loaded, played


def test_a_killed_evaluation_resumes_without_loss_or_duplicates(demo, tmp_path: Path):
    """Each finished evaluation episode is on disk at once; a resumed run plays only the missing ones, and
    a model with nothing left to play is not loaded."""
    from agentscaler_dagster.evaluation import evaluate
    from agentscaler_dagster.rollout import run_episode

    package, env, _ = demo
    tasks = sample_tasks(env, n_tasks=6, seed=3, max_walk_length=3)
    out = tmp_path / "episodes.jsonl"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_EVALUATION, str(package), str(out)])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 14):
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    before = [json.loads(x) for x in out.read_text().splitlines() if x.strip().endswith("}")]
    total = len(tasks) * 2 * 2
    assert 12 < len(before) < total, f"the kill did not land in the second model ({len(before)} of {total} written)"
    factory, loaded, played = _counting_agents()

    kwargs = dict(trials_k=2, seed=7, run_episode=run_episode)
    models = {"base": Path("base"), "phase2": Path("phase2")}
    user = lambda seed: ScenarioUserSimulator(seed=seed)  # noqa: E731
    resumed = evaluate(models, tasks, {env.domain_id: env}, user, agent_factory=factory, episodes_path=out, **kwargs)
    assert loaded == ["phase2"]  # every base episode was written before the kill
    assert len(played) == total - len(before)
    on_disk = [json.loads(x) for x in out.read_text().splitlines()]
    keys = [(d["model"], d["task_id"], d["trial"]) for d in on_disk]
    assert len(keys) == len(set(keys)) == total
    reference = evaluate(models, tasks, {env.domain_id: env}, user,
                         agent_factory=lambda name, path: OracleAgentSimulator(1 if name == "base" else 2, error_rate=0.5), **kwargs)

    def plain(report):
        return [e.model_dump(exclude={"seconds"}) for e in report.episodes], {n: m.pass_hat_k for n, m in report.models.items()}

    assert plain(resumed) == plain(reference)
    assert 0 < reference.models["base"].success_rate < 1  # the mistakes make the judge's verdicts differ
    # another setting (here the user simulator's key) is another evaluation: nothing is reused
    loaded.clear()
    evaluate(models, tasks, {env.domain_id: env}, user, agent_factory=factory, episodes_path=out, resume_key="llm-user", **kwargs)
    assert loaded == ["base", "phase2"] and len(out.read_text().splitlines()) == total


def test_evaluation_results_are_reused_only_under_the_same_server_settings(demo, tmp_path: Path):
    """The evaluation asset's resume key holds a hash of the vLLM server's settings: episodes written under the
    same settings are reused, under another max_model_len (which decides whether a long prompt is refused) they
    are played again. The key comes from the asset's own ``resume_key``; the resource is a real ``VLLMServer``
    (configured, never started: the oracle agent stands in for the model it would serve)."""
    from agentscaler_dagster.assets.evaluation import resume_key
    from agentscaler_dagster.evaluation import evaluate
    from agentscaler_dagster.rollout import run_episode

    _, env, tasks = demo
    tasks = tasks[:4]
    factory, loaded, played = _counting_agents()

    out = tmp_path / "episodes.jsonl"
    models = {"base": Path("base"), "phase2": Path("phase2")}

    def run(server: VLLMServer):
        loaded.clear()
        played.clear()
        return evaluate(models, tasks, {env.domain_id: env}, lambda seed: ScenarioUserSimulator(seed=seed),
                        agent_factory=factory, episodes_path=out, resume_key=resume_key("vllm", "programmatic", server),
                        trials_k=2, seed=7, run_episode=run_episode)

    def plain(report):
        return [e.model_dump(exclude={"seconds"}) for e in report.episodes]

    total = len(tasks) * 2 * len(models)
    first = run(VLLMServer(model="m", max_model_len=8192))
    assert loaded == ["base", "phase2"] and len(played) == total
    # the same settings in another resource instance (where it listens and logs does not change an episode)
    again = run(VLLMServer(model="m", max_model_len=8192, port=8123, log_dir=str(tmp_path / "logs")))
    assert loaded == [] and played == []
    assert plain(again) == plain(first)
    # another max_model_len: nothing is reused, every episode is played again and replaces the old one on disk
    run(VLLMServer(model="m", max_model_len=2048))
    assert loaded == ["base", "phase2"] and len(played) == total
    assert len(out.read_text().splitlines()) == total
    # the in-process generator has no server: its key does not depend on the resource's settings
    assert resume_key("transformers", "programmatic", VLLMServer(max_model_len=2048)) == \
        resume_key("transformers", "programmatic", VLLMServer(max_model_len=8192)) == "transformers/programmatic"


def test_the_resume_key_follows_the_llm_user_and_only_settings_that_change_episodes():
    """With ``user="llm"`` the user simulator's endpoint (and its managed server) is in the key: another user model
    plays other conversations. A key, a timeout or the concurrency do not change an episode; a programmatic user's
    key does not depend on the endpoint at all."""
    from agentscaler_dagster.assets.evaluation import resume_key

    server = VLLMServer(model="m")
    small = LLMEndpoint(kind="openai", base_urls=["http://u:8000/v1"], model="user-small")
    key = resume_key("vllm", "llm", server, small)
    assert key.startswith(resume_key("vllm", "llm", server) + "/user-")
    assert key == resume_key("vllm", "llm", server, small.model_copy(update={"api_key": "k", "timeout_s": 5.0,
                                                                            "max_concurrency": 64}))
    assert key != resume_key("vllm", "llm", server, small.model_copy(update={"model": "user-large"}))
    managed = LLMEndpoint(kind="llamacpp")
    assert (resume_key("transformers", "llm", server, managed, LlamaCppServer(model="a.gguf"))
            != resume_key("transformers", "llm", server, managed, LlamaCppServer(model="b.gguf")))
    assert resume_key("vllm", "programmatic", server, small) == resume_key("vllm", "programmatic", server)
