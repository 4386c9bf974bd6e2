"""`tau2_export`: the held-out domains' tasks and environments in tau2-bench's format (evaluation/tau2_export.py)."""

import json

import dagster as dg
from pydantic import Field

from agentscaler_dagster.assets._metadata import result
from agentscaler_dagster.assets.sft import domain_services
from agentscaler_dagster.domains.store import read_domains
from agentscaler_dagster.evaluation.tau2_export import DEFAULT_REWARD_BASIS, REWARD_TYPES, export_tau2, verify_export
from agentscaler_dagster.resources import ArtifactStore, PhasePlan
from agentscaler_dagster.tasks import read_tasks


class Tau2ExportConfig(dg.Config):
    reward_basis: list[str] = Field(default=list(DEFAULT_REWARD_BASIS),
                                    description=f"tau2 reward types that gate a task's reward ({', '.join(REWARD_TYPES)}).")
    verify: bool = Field(default=True, description="Replay every task's expected actions through the exported, "
                                                   "sandboxed environment and check the gold state (the asset check).")


@dg.asset(
    deps=["tasks", "environment"],
    group_name="evaluation",
    code_version="1",
    kinds={"json"},
    check_specs=[dg.AssetCheckSpec("tau2_gold_replay", asset="tau2_export",
                                   description="Every exported task's expected actions, replayed through the exported "
                                               "environment (sandboxed), reach the task's gold state.")],
    description="Held-out tasks as tau2-bench Task JSON, with each held-out domain's policy, database, tool schemas "
                "and a tau2-style environment whose tools run in the sandbox.",
)
def tau2_export(context: dg.AssetExecutionContext, config: Tau2ExportConfig, artifacts: ArtifactStore,
                phase_plan: PhasePlan) -> dg.MaterializeResult:
    layout = artifacts.layout
    domains = read_domains(layout.domains)
    # the evaluation asset's split (same resource, same inputs): held-out services' domains only
    split = phase_plan.split({d: dom.label for d, dom in domains.items()}, domain_services(layout, domains))
    chosen = [d for d in split.held_out if (layout.tasks(d) / "tasks.jsonl").is_file()
              and (layout.environment(d) / "manifest.json").is_file()]
    skipped = sorted(set(split.held_out) - set(chosen))
    if skipped:
        context.log.warning(f"held-out domains without tasks or an environment package, not exported: {skipped}")
    out = layout.stage("exports", "tau2")
    manifest = export_tau2(
        {d: read_tasks(layout.tasks(d) / "tasks.jsonl") for d in chosen},
        {d: layout.environment(d) for d in chosen},
        out,
        reward_basis=config.reward_basis,
        split={"held_out": split.held_out, "held_out_services": split.held_out_services, "excluded": split.excluded},
    )
    context.log.info(f"exported {manifest['tasks']} tasks of {len(manifest['domains'])} held-out domains to {out}")
    checks = []
    if config.verify:
        report = verify_export(out)
        checks.append(dg.AssetCheckResult(
            check_name="tau2_gold_replay", passed=not report["problems"],
            metadata={"tasks": report["tasks"], "matched": report["matched"],
                      "problems": dg.MetadataValue.json(report["problems"][:20])},
        ))
    else:
        checks.append(dg.AssetCheckResult(check_name="tau2_gold_replay", passed=True, metadata={"skipped": True}))
    first = next(iter(sorted(manifest["domains"])), None)
    example = json.loads((out / first / "tasks.json").read_text("utf-8"))[:1] if first else []
    return result(
        path=out / "manifest.json",
        digest=manifest["content_hash"],
        checks=checks,
        metadata={
            "tasks": manifest["tasks"],
            "domains": dg.MetadataValue.json({d: info["tasks"] for d, info in manifest["domains"].items()}),
            "held_out_services": dg.MetadataValue.json(split.held_out_services),
            "skipped_domains": dg.MetadataValue.json(skipped),
            "reward_basis": dg.MetadataValue.json(manifest["reward_basis"]),
            "example_task": dg.MetadataValue.json(example),
        },
    )
