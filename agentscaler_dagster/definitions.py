"""The agentscaler-dagster code location."""

from __future__ import annotations

import os

import dagster as dg

from agentscaler_dagster.assets import all_assets, corpus_assets, domain_assets, domain_partitions, training_assets
from agentscaler_dagster.resources import (
    ArtifactStore,
    DeepSpeedTrainer,
    LlamaCppServer,
    LLMEndpoint,
    PhasePlan,
    RolloutBackend,
    VLLMServer,
)

corpus_job = dg.define_asset_job(
    "corpus_job",
    selection=dg.AssetSelection.assets(*corpus_assets),
    description="Ingest the corpus, build the tool graph, discover domains (registers `domain` partitions).",
)
domain_job = dg.define_asset_job(
    "domain_job",
    selection=dg.AssetSelection.assets(*domain_assets),
    description="One domain: environment, tasks, trajectories, filtered trajectories.",
    # the four steps share one process: models and the embedder load once per run, not once per step
    executor_def=dg.in_process_executor,
)
training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets(*training_assets),
    description="SFT datasets, base model, phase 1 and phase 2 checkpoints, evaluation.",
    tags={"agentscaler/accelerator": "gpu"},
)

# Re-collect and re-cluster weekly; the sensor below fans the new domains out.
weekly_corpus_schedule = dg.ScheduleDefinition(
    name="weekly_corpus_refresh", job=corpus_job, cron_schedule="0 3 * * 1", default_status=dg.DefaultScheduleStatus.STOPPED
)


@dg.asset_sensor(asset_key=dg.AssetKey("domains"), job=domain_job, minimum_interval_seconds=60)
def domains_fan_out_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    """After `domains` materialises, request one `domain_job` run per registered domain."""
    keys = context.instance.get_dynamic_partitions(domain_partitions.name)
    for key in keys:
        yield dg.RunRequest(run_key=f"{asset_event.storage_id}:{key}", partition_key=key)


def default_resources(artifacts_root: str | None = None) -> dict:
    return {
        "artifacts": ArtifactStore(root=artifacts_root or os.environ.get("AGENTSCALER_ARTIFACTS", "artifacts")),
        "rollout_backend": RolloutBackend(),
        # one endpoint for every LLM step; the managed servers start only when a step uses them
        "llm": LLMEndpoint(),
        "vllm_server": VLLMServer(),
        "llamacpp_server": LlamaCppServer(),
        "phase_plan": PhasePlan(),
        "trainer": DeepSpeedTrainer(),
        "pipes_subprocess_client": dg.PipesSubprocessClient(),
    }


def build_defs(artifacts_root: str | None = None) -> dg.Definitions:
    """The code location; ``artifacts_root`` overrides $AGENTSCALER_ARTIFACTS (tests, the CLI)."""
    return dg.Definitions(
        assets=all_assets,
        jobs=[corpus_job, domain_job, training_job],
        schedules=[weekly_corpus_schedule],
        sensors=[domains_fan_out_sensor],
        resources=default_resources(artifacts_root),
    )


defs = build_defs()
