"""The code location loads, and its asset graph has the pipeline's shape (real Definitions, real `dg`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

from agentscaler_dagster.definitions import defs

PIPELINE = [
    "api_corpus", "tool_graph", "domains", "environment", "tasks", "trajectories", "filtered_trajectories",
    "sft_dataset_phase1", "sft_dataset_phase2", "base_model", "phase1_checkpoint", "phase2_checkpoint", "evaluation",
]


def _graph():
    return defs.resolve_asset_graph()


def test_every_stage_is_an_asset():
    keys = {key.to_user_string() for key in _graph().get_all_asset_keys()}
    assert set(PIPELINE) <= keys


def test_lineage_follows_the_pipeline():
    graph = _graph()
    parents = {k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys} for k in graph.get_all_asset_keys()}
    assert parents["tool_graph"] == {"api_corpus"}
    assert parents["domains"] == {"tool_graph"}
    assert "domains" in parents["environment"]
    assert parents["tasks"] == {"environment"}
    assert parents["trajectories"] == {"tasks"}
    assert parents["filtered_trajectories"] == {"trajectories", "environment"}  # the judge reads the tool kinds
    assert "filtered_trajectories" in parents["sft_dataset_phase1"]
    assert {"sft_dataset_phase1", "base_model"} <= parents["phase1_checkpoint"]
    assert {"sft_dataset_phase2", "phase1_checkpoint"} <= parents["phase2_checkpoint"]
    assert {"phase2_checkpoint", "base_model"} <= parents["evaluation"]


def test_every_asset_has_a_code_version_and_per_domain_assets_share_the_partition():
    graph = _graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.code_version, f"{key.to_user_string()} has no code_version"
    for name in ["environment", "tasks", "trajectories", "filtered_trajectories"]:
        partitions = graph.get(dg.AssetKey(name)).partitions_def
        assert isinstance(partitions, dg.DynamicPartitionsDefinition) and partitions.name == "domain"


def test_every_asset_has_an_owner_and_its_stage_tag():
    graph = _graph()
    stages = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners and all(owner.startswith("team:") for owner in node.owners), key.to_user_string()
        stages[key.to_user_string()] = node.tags.get("agentscaler/stage")
    assert stages["api_corpus"] == stages["domains"] == "scenario-collection"
    assert stages["environment"] == stages["trajectories"] == "environment-and-experience"
    assert stages["phase1_checkpoint"] == stages["sft_dataset_phase2"] == "agentic-training"
    assert stages["evaluation"] == stages["bfcl_evaluation"] == stages["tau2_export"] == "evaluation"
    # the automation conditions survive the owners being added
    assert graph.get(dg.AssetKey("tasks")).automation_condition is not None


def test_training_and_evaluation_use_the_gpu_pool():
    for name in ["phase1_checkpoint", "phase2_checkpoint", "evaluation"]:
        assert _graph().get(dg.AssetKey(name)).pools == {"gpu"}


def test_jobs_schedules_sensors_resolve():
    for job in ["corpus_job", "domain_job", "training_job"]:
        assert defs.resolve_job_def(job) is not None
    schedule = defs.resolve_schedule_def("weekly_corpus_refresh")
    assert schedule.cron_schedule == "0 3 * * 1" and schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert defs.resolve_sensor_def("pipeline_automation") is not None  # conditions: tests/test_automation.py


def test_dg_check_defs_passes(repo_root: Path):
    dg_cli = Path(sys.executable).parent / "dg"
    if not dg_cli.exists():
        dg_cli = shutil.which("dg")
    assert dg_cli, "dg (dagster-dg-cli) is a dependency and must be installed"
    proc = subprocess.run([str(dg_cli), "check", "defs"], cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_materialize_run_config_merges_overrides_into_the_profile():
    from agentscaler_dagster.pipeline_cli import run_config_for

    config = run_config_for(defs, "smoke", "training_job", {"evaluation": {"max_tasks": 1}, "base_model": {"source": "tiny"}})
    assert config["ops"]["evaluation"]["config"] == {"max_tasks": 1, "trials_k": 1, "max_turns": 4, "max_new_tokens": 16}
    assert "api_corpus" not in config["ops"]  # not a node of training_job
    assert run_config_for(defs, "default", "corpus_job") == {}
