import dagster as dg
from pydantic import Field

from agentscaler_dagster.artifacts import file_digest
from agentscaler_dagster.assets._metadata import preview, result
from agentscaler_dagster.assets.partitions import domain_partitions
from agentscaler_dagster.resources import ArtifactStore
from agentscaler_dagster.sandbox import Environment
from agentscaler_dagster.tasks import (
    policy_tasks,
    refusal_count,
    sample_tasks,
    summarise_tasks,
    with_prompt_tools,
    write_tasks,
)


class TaskConfig(dg.Config):
    n_tasks: int = Field(default=12, ge=0, description="Tasks sampled per domain (random walks).")
    max_walk_length: int = Field(default=4, ge=1, description="Longest random walk on the dependency graph (tool calls per task).")
    seed: int = Field(default=0, description="Seed of the random walks and argument filling.")
    policy_share: float = Field(default=0.1, ge=0.0, lt=1.0,
                                description="Target share of refusal tasks (requests the policy forbids) among all "
                                            "tasks of a domain; fewer where the domain has fewer forbidden requests.")
    max_prompt_tools: int = Field(default=0, ge=0,
                                  description="Most tools an agent is shown per task: the task's own plus seeded "
                                              "distractors from its domain. 0: every tool of the domain.")


@dg.asset(
    deps=["environment"],
    partitions_def=domain_partitions,
    group_name="tasks",
    code_version="3",  # 3: prompt_tools
    kinds={"jsonl"},
)
def tasks(context: dg.AssetExecutionContext, config: TaskConfig, artifacts: ArtifactStore) -> dg.MaterializeResult:
    """Goal-level tasks: random walks on the dependency graph told as a person would ask, plus refusal tasks."""
    layout = artifacts.layout
    domain_id = context.partition_key
    with Environment.load(layout.environment(domain_id)) as env:
        sampled = sample_tasks(env, n_tasks=config.n_tasks, seed=config.seed, max_walk_length=config.max_walk_length)
        sampled += policy_tasks(env, n_tasks=refusal_count(config.policy_share, len(sampled)), seed=config.seed)
        sampled = with_prompt_tools(sampled, env, max_tools=config.max_prompt_tools, seed=config.seed)
        domain_tools = len(env.tools)
    path = layout.tasks(domain_id) / "tasks.jsonl"
    write_tasks(sampled, path)
    lengths = [len(t.gold_actions) for t in sampled]
    summary = summarise_tasks(sampled)
    context.log.info(f"{domain_id}: {len(sampled)} tasks, {sum(t.read_only for t in sampled)} read-only, "
                     f"{sum(t.policy_rule is not None for t in sampled)} refusals")
    return result(
        path=path,
        digest=file_digest(path),
        metadata={
            "tasks": len(sampled),
            "dagster/row_count": len(sampled),
            "read_only": sum(t.read_only for t in sampled),
            "refusal_tasks": sum(t.policy_rule is not None for t in sampled),
            "mean_gold_actions": float(sum(lengths) / len(lengths)) if lengths else 0.0,
            "tools_shown_per_task": float(sum(len(t.prompt_tools) or domain_tools for t in sampled) / len(sampled))
            if sampled else 0.0,
            "share_needing_lookup": summary["share_needing_lookup"],
            "share_with_hidden_facts": summary["share_with_hidden_facts"],
            "distinct_intent_ratio": summary["distinct_intent_ratio"],
            "preview": preview([{"intent": t.user_intent, "gold": [a.name for a in t.gold_actions]} for t in sampled]),
        },
    )
