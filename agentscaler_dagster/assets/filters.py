import json

import dagster as dg
from pydantic import Field

from agentscaler_dagster.artifacts import file_digest, read_package_json
from agentscaler_dagster.contracts import ToolSpec
from agentscaler_dagster.assets._metadata import picture, preview, result
from agentscaler_dagster.assets.partitions import domain_partitions
from agentscaler_dagster.filters import STAGES, apply_filters, funnel_picture, injected_error_scores
from agentscaler_dagster.resources import ArtifactStore
from agentscaler_dagster.rollout import read_trajectories, write_trajectories
from agentscaler_dagster.tasks import read_tasks


class FilterConfig(dg.Config):
    ngram_n: int = Field(default=4, ge=1, description="n of the repetition check in validity control.")
    max_ngram_repeat: int = Field(default=3, ge=1, description="An assistant n-gram seen more often than this is severe repetition.")
    min_kept_share: float = Field(default=0.05, ge=0.0, le=1.0, description="The funnel check fails when fewer than this share of trajectories survive.")


@dg.asset(
    deps=["trajectories", "environment"],
    partitions_def=domain_partitions,
    group_name="experience",
    code_version="3",  # 3: the judge checks the policy (refusals, confirmations)
    kinds={"jsonl"},
    # one result per domain: without the partitions, the checks page shows only the last domain's
    check_specs=[dg.AssetCheckSpec("funnel_floor", asset="filtered_trajectories", partitions_def=domain_partitions,
                                   description="Enough of the domain's trajectories survive the three filters.")],
)
def filtered_trajectories(context: dg.AssetExecutionContext, config: FilterConfig, artifacts: ArtifactStore) -> dg.MaterializeResult:
    """Three-stage filter: validity, environment state alignment, function-call exact match."""
    layout = artifacts.layout
    domain_id = context.partition_key
    tasks_by_id = {t.task_id: t for t in read_tasks(layout.tasks(domain_id) / "tasks.jsonl")}
    episodes = read_trajectories(layout.trajectories(domain_id) / "trajectories.jsonl")
    specs = [ToolSpec.model_validate(s) for s in read_package_json(layout.environment(domain_id), "tool_specs.json")]
    filtered = apply_filters(episodes, tasks_by_id, ngram_n=config.ngram_n, max_ngram_repeat=config.max_ngram_repeat,
                             write_tools={spec.name for spec in specs if spec.operation == "write"})
    out = layout.filtered(domain_id)
    write_trajectories(filtered.kept, out / "filtered_trajectories.jsonl")
    (out / "funnel.json").write_text(json.dumps(filtered.funnel, indent=2, sort_keys=True))
    funnel_picture(filtered.funnel, out / "funnel.png")
    kept_share = len(filtered.kept) / len(episodes) if episodes else 0.0
    extra = {}
    if any(getattr(e, "agent_mistakes", None) is not None for e in episodes):
        # the oracle simulator's injected mistakes are ground truth: how well does the funnel find them?
        scores = injected_error_scores(episodes, filtered)
        (out / "filter_scores.json").write_text(json.dumps(scores, indent=2, sort_keys=True))
        final = scores[STAGES[-1]]
        extra = {f"filter_{k}": final[k] for k in ("precision", "recall") if final[k] is not None}
        extra["filter_scores"] = dg.MetadataValue.json(scores)
    return result(
        path=out / "filtered_trajectories.jsonl",
        digest=file_digest(out / "filtered_trajectories.jsonl"),
        metadata={
            "kept": len(filtered.kept),
            "kept_share": kept_share,
            "funnel": dg.MetadataValue.json(filtered.funnel),
            "funnel_picture": picture(out / "funnel.png", f"filter funnel of {domain_id}"),
            "rejections": preview([{"trajectory": r[0], "stage": r[1], "reason": r[2]} for r in filtered.rejected], limit=10),
            **extra,
        },
        checks=[dg.AssetCheckResult(check_name="funnel_floor", passed=kept_share >= config.min_kept_share,
                                    severity=dg.AssetCheckSeverity.WARN,
                                    description=f"{len(filtered.kept)} of {len(episodes)} trajectories kept "
                                                f"(floor {config.min_kept_share:.0%})",
                                    metadata={"kept_share": kept_share, "min_kept_share": config.min_kept_share})],
    )
