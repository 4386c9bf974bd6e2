import contextlib
import time

import dagster as dg
from pydantic import Field

from agentscaler_dagster.artifacts import file_digest
from agentscaler_dagster.assets._metadata import preview, result
from agentscaler_dagster.assets.partitions import domain_partitions
from agentscaler_dagster.resources import ArtifactStore, LLMEndpoint, LlamaCppServer, RolloutBackend, VLLMServer
from agentscaler_dagster.resources.serving import throughput
from agentscaler_dagster.rollout import run_rollouts, write_trajectories
from agentscaler_dagster.sandbox import Environment
from agentscaler_dagster.tasks import read_tasks


class RolloutConfig(dg.Config):
    trials: int = Field(default=2, ge=1, description="Episodes per task.")
    max_turns: int = Field(default=20, ge=1, description="Turn limit of one episode.")
    seed: int = Field(default=0, description="Seed of the simulators.")
    resume: bool = Field(default=True, description="Keep the episodes an interrupted run already wrote (keyed by task and trial).")


@dg.asset(
    deps=["tasks"],
    partitions_def=domain_partitions,
    group_name="experience",
    code_version="3",  # 3: scenario user and oracle agent
    kinds={"jsonl"},
    # the agent may be a local model (a managed server on the accelerator training and evaluation use);
    # on the programmatic default this only runs the domains' rollout steps one at a time, ~1 s each
    pool="gpu",
)
def trajectories(
    context: dg.AssetExecutionContext, config: RolloutConfig, artifacts: ArtifactStore, rollout_backend: RolloutBackend,
    llm: LLMEndpoint, vllm_server: VLLMServer, llamacpp_server: LlamaCppServer,
) -> dg.MaterializeResult:
    """Agent experience: a simulated user and the agent talk until the user is satisfied."""
    layout = artifacts.layout
    domain_id = context.partition_key
    domain_tasks = read_tasks(layout.tasks(domain_id) / "tasks.jsonl")
    path = layout.trajectories(domain_id) / "trajectories.jsonl"
    if not config.resume and path.exists():
        path.unlink()
    client = llm.client(vllm_server=vllm_server, llamacpp_server=llamacpp_server) if rollout_backend.uses_llm else None
    server_info = {"vllm": vllm_server, "llamacpp": llamacpp_server}.get(llm.kind)
    server_info = server_info.info() if server_info is not None and client is not None else {}
    if server_info:
        context.log.info(f"model server: {server_info}")
    concurrency = rollout_backend.episode_concurrency(llm.max_concurrency)
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        rate = done / max(time.monotonic() - started, 1e-9)
        context.log.info(f"{domain_id}: {done}/{total} episodes ({rate:.2f}/s, {concurrency} at once)")

    copies = rollout_backend.sandbox_copies(concurrency)
    with contextlib.ExitStack() as stack:
        env = [stack.enter_context(Environment.load(layout.environment(domain_id))) for _ in range(copies)]
        episodes = run_rollouts(
            domain_tasks, env, rollout_backend.agent_factory(client), rollout_backend.user_factory(client),
            trials=config.trials, seed=config.seed, max_turns=config.max_turns, progress=progress,
            concurrency=concurrency, out_path=path, backend_retries=rollout_backend.backend_retries,
        )
    write_trajectories(episodes, path)  # the same episodes, in task order
    terminations: dict[str, int] = {}
    for episode in episodes:
        terminations[episode.termination] = terminations.get(episode.termination, 0) + 1
    metadata = {
        "trajectories": len(episodes),
        "backend": llm.describe() if client is not None else "programmatic-simulator",
        "concurrency": concurrency,
        "sandbox_workers": copies,
        "terminations": dg.MetadataValue.json(terminations),
        "preview": preview([{"task": e.task_id, "trial": e.trial, "messages": len(e.messages), "termination": e.termination} for e in episodes]),
    }
    if client is not None:
        metadata["server"] = dg.MetadataValue.json(server_info or {"base_urls": client.base_urls})
        metadata["throughput"] = dg.MetadataValue.json(throughput(client.usage, time.monotonic() - started))
    return result(path=path, digest=file_digest(path), metadata=metadata)
