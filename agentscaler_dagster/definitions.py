"""The agentscaler-dagster code location."""

from __future__ import annotations

import os

import dagster as dg

from agentscaler_dagster.assets import (
    all_assets,
    benchmark_assets,
    corpus_assets,
    dataset_assets,
    domain_assets,
    export_assets,
    training_assets,
)
from agentscaler_dagster.assets.automation import automation_sensor
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
    executor_def=dg.in_process_executor,
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
    # training runs in its own DeepSpeed processes (Pipes) already; a process per step would only add start-ups
    executor_def=dg.in_process_executor,
)

# Not one of `agentscaler materialize`'s jobs (pipeline_cli.JOBS): a public benchmark is run when asked for,
# so the main command's time does not grow with it.
benchmark_job = dg.define_asset_job(
    "benchmark_job",
    selection=dg.AssetSelection.assets(*benchmark_assets),
    description="BFCL v4 through bfcl-eval's own data and checkers (its venv, Dagster Pipes): base vs fine-tuned.",
    tags={"agentscaler/accelerator": "gpu"},
)

# Not one of `agentscaler materialize`'s jobs either: the tau2-bench export of the held-out domains, when asked for.
export_job = dg.define_asset_job(
    "export_job",
    selection=dg.AssetSelection.assets(*export_assets),
    description="Held-out tasks and environments in tau2-bench's format (artifacts/exports/tau2).",
)

# Re-collect and re-cluster weekly; the automation below fans the changed domains out. Off by default: a
# schedule runs with the code location's default config (the starter corpus), so on an instance built from
# a corpus of your own (`--config '{"api_corpus": {"paths": [...]}}'`) it would swap that corpus out. Turn it
# on once the default config is the corpus you mean; an unchanged corpus then changes no data version.
weekly_corpus_schedule = dg.ScheduleDefinition(
    name="weekly_corpus_refresh", job=corpus_job, cron_schedule="0 3 * * 1", default_status=dg.DefaultScheduleStatus.STOPPED
)

# per-domain stages and SFT datasets follow their inputs (assets/automation.py): a new `domains` fans out
pipeline_automation = automation_sensor(dg.AssetSelection.assets(*domain_assets, *dataset_assets))


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
        assets=[*all_assets, *export_assets],
        jobs=[corpus_job, domain_job, training_job, benchmark_job, export_job],
        schedules=[weekly_corpus_schedule],
        sensors=[pipeline_automation],
        resources=default_resources(artifacts_root),
    )


defs = build_defs()
