import json

import dagster as dg

from agentscaler_dagster.artifacts import file_digest, read_package_json
from agentscaler_dagster.assets._metadata import preview, result
from agentscaler_dagster.domains.store import read_domains
from agentscaler_dagster.resources import ArtifactStore, PhasePlan
from agentscaler_dagster.rollout import read_trajectories
from agentscaler_dagster.sft import build_sft_records, write_sft_dataset


def domain_services(layout, domain_ids) -> dict[str, set[str]]:
    """Domain -> the services (API titles, else source files) its environment's tools come from."""
    services = {}
    for domain_id in domain_ids:
        path = layout.environment(domain_id) / "tool_specs.json"
        if path.exists():
            specs = read_package_json(path.parent, path.name)
            services[domain_id] = {(s.get("source") or {}).get("api_title") or (s.get("source") or {}).get("file") or "?"
                                   for s in specs}
    return services


def _sft_dataset_asset(phase: int) -> dg.AssetsDefinition:
    which = "general" if phase == 1 else "vertical"

    @dg.asset(
        name=f"sft_dataset_phase{phase}",
        deps=["filtered_trajectories", "environment"],
        group_name="training",
        code_version="2",  # 2: held out by service
        kinds={"jsonl"},
        check_specs=[dg.AssetCheckSpec("dataset_not_empty", asset=f"sft_dataset_phase{phase}", blocking=True,
                                       description=f"Phase {phase} has at least one SFT record; blocks its training when not.")],
        description=f"SFT records (messages + tools) from the filtered trajectories of the {which} domains (phase {phase}).",
    )
    def _dataset(context: dg.AssetExecutionContext, artifacts: ArtifactStore, phase_plan: PhasePlan) -> dg.MaterializeResult:
        layout = artifacts.layout
        domains = read_domains(layout.domains)
        split = phase_plan.split({d: dom.label for d, dom in domains.items()}, domain_services(layout, domains))
        chosen = split.general if phase == 1 else split.vertical
        trajectories, tools_by_domain = [], {}
        for domain_id in chosen:
            kept = layout.filtered(domain_id) / "filtered_trajectories.jsonl"
            if not kept.exists():
                context.log.warning(f"{domain_id}: no filtered trajectories yet; left out of phase {phase}")
                continue
            trajectories += read_trajectories(kept)
            tools_by_domain[domain_id] = read_package_json(layout.environment(domain_id), "tools.json")
        records = build_sft_records(trajectories, tools_by_domain, phase=phase)
        path = layout.sft / f"phase{phase}.jsonl"
        write_sft_dataset(records, path)
        (layout.sft / "phase_split.json").write_text(json.dumps(split.__dict__, indent=2, sort_keys=True))
        context.log.info(f"phase {phase}: {len(records)} records from {len(tools_by_domain)} domains")
        return result(
            path=path,
            digest=file_digest(path),
            metadata={
                "records": len(records),
                "domains": dg.MetadataValue.json(chosen),
                "held_out_domains": dg.MetadataValue.json(split.held_out),
                "held_out_services": dg.MetadataValue.json(split.held_out_services),
                "excluded_domains": dg.MetadataValue.json(split.excluded),
                "preview": preview([{"domain": r.domain_id, "turns": len(r.messages)} for r in records]),
            },
            checks=[dg.AssetCheckResult(check_name="dataset_not_empty", passed=bool(records), metadata={"records": len(records)})],
        )

    return _dataset


sft_dataset_phase1 = _sft_dataset_asset(1)
sft_dataset_phase2 = _sft_dataset_asset(2)
