"""Thin assets, one module per stage: read inputs, call the core, write files, return metadata."""

from agentscaler_dagster.assets import automation
from agentscaler_dagster.assets.bfcl import bfcl_evaluation
from agentscaler_dagster.assets.corpus import api_corpus
from agentscaler_dagster.assets.domains import tool_graph_and_domains
from agentscaler_dagster.assets.environment import environment
from agentscaler_dagster.assets.evaluation import evaluation
from agentscaler_dagster.assets.filters import filtered_trajectories
from agentscaler_dagster.assets.partitions import domain_partitions
from agentscaler_dagster.assets.rollouts import trajectories
from agentscaler_dagster.assets.sft import sft_dataset_phase1, sft_dataset_phase2
from agentscaler_dagster.assets.tasks import tasks
from agentscaler_dagster.assets.training import base_model, phase1_checkpoint, phase2_checkpoint

corpus_assets = [api_corpus, tool_graph_and_domains]
# what the daemon builds on its own when inputs change (assets/automation.py); training waits for a person
domain_assets = automation.with_condition([environment, tasks, trajectories, filtered_trajectories], automation.domain_stage())
dataset_assets = automation.with_condition([sft_dataset_phase1, sft_dataset_phase2], automation.dataset())
training_assets = [*dataset_assets, base_model, phase1_checkpoint, phase2_checkpoint, evaluation]
# benchmarks on public suites: asked for (benchmark_job), never part of `agentscaler materialize`
benchmark_assets = [bfcl_evaluation]
all_assets = [*corpus_assets, *domain_assets, *training_assets, *benchmark_assets]

__all__ = ["all_assets", "benchmark_assets", "corpus_assets", "dataset_assets", "domain_assets", "domain_partitions", "training_assets"]
