import time

import dagster as dg
from pydantic import Field

from agentscaler_dagster.artifacts import file_digest
from agentscaler_dagster.assets._metadata import preview, result
from agentscaler_dagster.assets.partitions import domain_partitions
from agentscaler_dagster.resources import ArtifactStore, RolloutBackend
from agentscaler_dagster.rollout import run_rollouts, write_trajectories
from agentscaler_dagster.sandbox import Environment
from agentscaler_dagster.tasks import read_tasks


class RolloutConfig(dg.Config):
    trials: int = Field(default=2, description="Episodes per task.")
    max_turns: int = Field(default=20, description="Turn limit of one episode.")
    seed: int = Field(default=0, description="Seed of the simulators.")


@dg.asset(
    deps=["tasks"],
    partitions_def=domain_partitions,
    group_name="experience",
    code_version="1",
    kinds={"jsonl"},
)
def trajectories(
    context: dg.AssetExecutionContext, config: RolloutConfig, artifacts: ArtifactStore, rollout_backend: RolloutBackend
) -> dg.MaterializeResult:
    """Agent experience: a simulated user and the agent talk until the user is satisfied."""
    layout = artifacts.layout
    domain_id = context.partition_key
    domain_tasks = read_tasks(layout.tasks(domain_id) / "tasks.jsonl")
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        rate = done / max(time.monotonic() - started, 1e-9)
        context.log.info(f"{domain_id}: {done}/{total} episodes ({rate:.1f}/s)")

    with Environment.load(layout.environment(domain_id)) as env:
        episodes = run_rollouts(
            domain_tasks, env, rollout_backend.agent_factory(), rollout_backend.user_factory(),
            trials=config.trials, seed=config.seed, max_turns=config.max_turns, progress=progress,
        )
    path = layout.trajectories(domain_id) / "trajectories.jsonl"
    write_trajectories(episodes, path)
    terminations: dict[str, int] = {}
    for episode in episodes:
        terminations[episode.termination] = terminations.get(episode.termination, 0) + 1
    return result(
        path=path,
        digest=file_digest(path),
        metadata={
            "trajectories": len(episodes),
            "backend": rollout_backend.backend_name,
            "terminations": dg.MetadataValue.json(terminations),
            "preview": preview([{"task": e.task_id, "trial": e.trial, "messages": len(e.messages), "termination": e.termination} for e in episodes]),
        },
    )
