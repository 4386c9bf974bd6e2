"""Thin assets, one module per stage: read inputs, call the core, write files, return metadata."""

import warnings

import dagster as dg

# Two preview features this location uses on purpose, whose notice every run and step process would print
# again (they are for the location's authors, who chose them): per-partition asset checks, and the Pipes
# reader's writer count (dagster's own code path under PipesSubprocessClient). Other notices stay on.
for _preview in (r"Specifying a partitions_def on an AssetCheckSpec", r"Function `PipesMessageReader\.expected_writer_count`"):
    warnings.filterwarnings("ignore", message=_preview, category=dg.PreviewWarning)

from agentscaler_dagster.assets import automation  # noqa: E402
from agentscaler_dagster.assets.bfcl import bfcl_evaluation  # noqa: E402
from agentscaler_dagster.assets.corpus import api_corpus  # noqa: E402
from agentscaler_dagster.assets.domains import tool_graph_and_domains  # noqa: E402
from agentscaler_dagster.assets.environment import environment  # noqa: E402
from agentscaler_dagster.assets.evaluation import evaluation  # noqa: E402
from agentscaler_dagster.assets.export import tau2_export  # noqa: E402
from agentscaler_dagster.assets.filters import filtered_trajectories  # noqa: E402
from agentscaler_dagster.assets.partitions import domain_partitions  # noqa: E402
from agentscaler_dagster.assets.rollouts import trajectories  # noqa: E402
from agentscaler_dagster.assets.sft import sft_dataset_phase1, sft_dataset_phase2  # noqa: E402
from agentscaler_dagster.assets.tasks import tasks  # noqa: E402
from agentscaler_dagster.assets.training import base_model, phase1_checkpoint, phase2_checkpoint  # noqa: E402


def _owned(assets: list, stage: str, owner: str) -> list:
    """Who answers for an asset (the UI's owner filter) and which of the paper's stages it belongs to (a tag)."""
    def describe(spec: dg.AssetSpec) -> dg.AssetSpec:
        return spec.replace_attributes(owners=[owner], tags={**spec.tags, "agentscaler/stage": stage})

    return [asset.map_asset_specs(describe) for asset in assets]


corpus_assets = _owned([api_corpus, tool_graph_and_domains], "scenario-collection", "team:data-generation")
# what the daemon builds on its own when inputs change (assets/automation.py); training waits for a person
domain_assets = _owned(
    automation.with_condition([environment, tasks, trajectories, filtered_trajectories], automation.domain_stage()),
    "environment-and-experience", "team:data-generation")
dataset_assets = _owned(automation.with_condition([sft_dataset_phase1, sft_dataset_phase2], automation.dataset()),
                        "agentic-training", "team:training")
training_assets = [*dataset_assets, *_owned([base_model, phase1_checkpoint, phase2_checkpoint], "agentic-training", "team:training"),
                   *_owned([evaluation], "evaluation", "team:evaluation")]
# benchmarks on public suites: asked for (benchmark_job), never part of `agentscaler materialize`
benchmark_assets = _owned([bfcl_evaluation], "evaluation", "team:evaluation")
# the held-out tasks in tau2-bench's format (export_job), asked for as well
export_assets = _owned([tau2_export], "evaluation", "team:evaluation")
all_assets = [*corpus_assets, *domain_assets, *training_assets, *benchmark_assets]

__all__ = ["all_assets", "benchmark_assets", "corpus_assets", "dataset_assets", "domain_assets", "domain_partitions",
           "export_assets", "training_assets"]
