import dagster as dg
from pydantic import Field

from agentscaler_dagster.artifacts import file_digest
from agentscaler_dagster.assets._metadata import preview, result
from agentscaler_dagster.assets.partitions import domain_partitions
from agentscaler_dagster.resources import ArtifactStore
from agentscaler_dagster.sandbox import Environment
from agentscaler_dagster.tasks import sample_tasks, write_tasks


class TaskConfig(dg.Config):
    n_tasks: int = Field(default=12, description="Tasks sampled per domain.")
    max_walk_length: int = Field(default=4, description="Longest random walk on the dependency graph (tool calls per task).")
    seed: int = Field(default=0, description="Seed of the random walks and argument filling.")


@dg.asset(
    deps=["environment"],
    partitions_def=domain_partitions,
    group_name="tasks",
    code_version="1",
    kinds={"jsonl"},
)
def tasks(context: dg.AssetExecutionContext, config: TaskConfig, artifacts: ArtifactStore) -> dg.MaterializeResult:
    """Random walks on the dependency graph, executed for gold actions and gold final states."""
    layout = artifacts.layout
    domain_id = context.partition_key
    with Environment.load(layout.environment(domain_id)) as env:
        sampled = sample_tasks(env, n_tasks=config.n_tasks, seed=config.seed, max_walk_length=config.max_walk_length)
    path = layout.tasks(domain_id) / "tasks.jsonl"
    write_tasks(sampled, path)
    lengths = [len(t.gold_actions) for t in sampled]
    context.log.info(f"{domain_id}: {len(sampled)} tasks, {sum(t.read_only for t in sampled)} read-only")
    return result(
        path=path,
        digest=file_digest(path),
        metadata={
            "tasks": len(sampled),
            "read_only": sum(t.read_only for t in sampled),
            "mean_gold_actions": float(sum(lengths) / len(lengths)) if lengths else 0.0,
            "preview": preview([{"intent": t.user_intent, "gold": [a.name for a in t.gold_actions]} for t in sampled]),
        },
    )
