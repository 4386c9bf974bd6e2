"""The whole asset graph, materialised on a small slice of the starter corpus, checked stage by stage.

Real: a Dagster instance (sqlite, temporary DAGSTER_HOME), the three jobs launched exactly as
`agentscaler materialize` launches them (a gRPC code server for the location, the instance's run launcher, a
worker process per run), the sandboxed environment workers, the MiniLM embedder, DeepSpeed
on CPU launched through Dagster Pipes, and a tiny randomly initialised Gemma 3 model (the real 270M
checkpoint is what the main job uses).
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from agentscaler_dagster.artifacts import read_jsonl
from agentscaler_dagster.contracts import state_hash
from agentscaler_dagster.corpus import read_corpus
from agentscaler_dagster.pipeline_cli import materialize_all, rebuild_changed
from agentscaler_dagster.sandbox import Environment, check_module
from agentscaler_dagster.tasks import read_tasks
from agentscaler_dagster.tasks.leakage import LeakDetector, scan_user_messages


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    (root / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "dagster_home")) as instance:
        lines: list[str] = []
        summary = materialize_all(instance=instance, artifacts_root=str(root / "artifacts"), profile="smoke",
                                  log=lines.append, log_file=root / "artifacts" / "materialize.log")
        summary["console"] = lines
        yield instance, root / "artifacts", summary


def _materialization(instance, key: str, partition: str | None = None):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[partition] if partition else None), limit=1
    ).records
    assert records, f"{key} ({partition}) was never materialised"
    return records[0].asset_materialization


def test_every_run_succeeded(pipeline):
    instance, _, summary = pipeline
    assert summary["failed_domains"] == {}
    for run_id in summary["runs"].values():
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS


def test_console_shows_progress_and_the_log_file_has_everything(pipeline):
    _, artifacts, summary = pipeline
    domains = [k for k in summary["runs"] if k.startswith("domain_job[")]
    progress = [line for line in summary["console"] if line.startswith("[domain_job] ") and " done, " in line]
    assert len(progress) == len(domains) and progress[-1].startswith(f"[domain_job] {len(domains)}/{len(domains)} done")
    assert all("/min, ETA " in line for line in progress)
    assert len(summary["console"]) < 20 + len(domains)  # one line per run, not one per Dagster event
    # and one per training step and evaluated episode, as the training run writes them
    for phase in (1, 2):
        steps = [line for line in summary["console"] if line.startswith(f"[training_job] phase {phase} step ")]
        assert [line.split()[4] for line in steps] == ["1/2", "2/2"], summary["console"]
    assert any(line.startswith("[training_job] evaluation ") and " episodes (" in line for line in summary["console"])
    log = (artifacts / "materialize.log").read_text()
    for label, run_id in summary["runs"].items():
        assert f"===== {label} (run {run_id})" in log
    assert log.count("STEP_SUCCESS") >= 2 + 4 * len(domains)


def test_runs_were_launched_against_the_code_location_by_the_run_launcher(pipeline):
    """Not executed in the CLI's process: created from the location's job snapshot (the origin the UI re-executes
    from) and run by a worker process the launcher started."""
    import os

    instance, _, summary = pipeline
    assert summary["launch"] == "launcher"
    workers = set()
    for label, run_id in summary["runs"].items():
        run = instance.get_run_by_id(run_id)
        origin = run.remote_job_origin
        assert origin is not None, label
        assert origin.repository_origin.code_location_origin.location_name == "agentscaler_dagster"
        assert origin.job_name == label.split("[")[0]
        [start] = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START)
        assert start.dagster_event.pid not in (None, os.getpid()), label
        workers.add(start.dagster_event.pid)
    assert len(workers) == len(summary["runs"])  # a worker process per run


def test_tabular_assets_carry_the_standard_row_count_from_their_seal(pipeline):
    instance, artifacts, _ = pipeline
    tools = read_corpus(artifacts / "corpus")
    assert _materialization(instance, "api_corpus").metadata["dagster/row_count"].value == len(tools)
    domain_rows = pq.read_table(artifacts / "domains" / "domains.parquet").num_rows
    assert _materialization(instance, "domains").metadata["dagster/row_count"].value == domain_rows
    for name in ("sft_dataset_phase1", "sft_dataset_phase2"):
        meta = _materialization(instance, name).metadata
        path = Path(meta["path"].value)
        assert meta["dagster/row_count"].value == sum(1 for line in path.open() if line.strip()) > 0, name
    domain = instance.get_dynamic_partitions("domain")[0]
    meta = _materialization(instance, "trajectories", domain).metadata
    assert meta["dagster/row_count"].value == len(read_jsonl(Path(meta["path"].value))) > 0


def test_corpus_and_domains(pipeline):
    instance, artifacts, _ = pipeline
    tools = read_corpus(artifacts / "corpus")
    report = json.loads((artifacts / "corpus" / "ingest_report.json").read_text())
    assert report["inputs"] == 3 and report["ingested"] == len(tools) >= 30
    domains = pq.read_table(artifacts / "domains" / "domains.parquet").to_pylist()
    assert {row["tool_id"] for row in domains} == {t.tool_id for t in tools}
    keys = set(instance.get_dynamic_partitions("domain"))
    assert keys == {row["domain_id"] for row in domains} and len(keys) >= 2
    meta = _materialization(instance, "domains").metadata
    assert meta["n_domains"].value == len(keys)
    assert "data:image/png;base64," in meta["size_distribution"].value
    assert pq.read_table(artifacts / "domains" / "tool_graph_edges.parquet").num_rows > 0


def test_each_domain_environment_tasks_and_trajectories(pipeline):
    instance, artifacts, _ = pipeline
    for domain_id in instance.get_dynamic_partitions("domain"):
        package = artifacts / "environments" / domain_id
        assert check_module((package / "tools_module.py").read_text()) == []
        validation = json.loads((package / "validation.json").read_text())
        assert validation["pass_rate"] >= 0.8
        tasks = read_tasks(artifacts / "tasks" / domain_id / "tasks.jsonl")
        assert tasks, f"{domain_id}: no tasks"
        with Environment.load(package) as env:
            for task in tasks:
                state = env.initial_states[task.initial_state_id]
                assert state_hash(state) == task.initial_state_hash
                for action in task.gold_actions:
                    outcome = env.call(state, action.name, action.arguments)
                    assert outcome.ok, outcome.error
                    state = outcome.state
                assert state_hash(state) == task.gold_state_hash
            detector = LeakDetector(env)
        episodes = read_jsonl(artifacts / "trajectories" / domain_id / "trajectories.jsonl")
        assert len(episodes) == len(tasks)  # smoke profile: one trial per task
        scenarios = {t.task_id: t.scenario for t in tasks}
        for e in episodes:  # no user message says what only the agent can know
            assert scan_user_messages(detector, e["messages"], scenarios[e["task_id"]]) == [], e["messages"]
        assert all(e["messages"][0]["role"] == "system" for e in episodes)
        kept = read_jsonl(artifacts / "filtered_trajectories" / domain_id / "filtered_trajectories.jsonl")
        funnel = json.loads((artifacts / "filtered_trajectories" / domain_id / "funnel.json").read_text())
        assert {k["trajectory_id"] for k in kept} <= {e["trajectory_id"] for e in episodes}
        assert len(kept) <= len(episodes)
        gold = {t.task_id: t for t in tasks}
        for trajectory in kept:
            assert trajectory["final_state_hash"] == gold[trajectory["task_id"]].gold_state_hash
        assert json.dumps(funnel)  # written
        env_meta = _materialization(instance, "environment", domain_id).metadata
        assert env_meta["pass_rate"].value >= 0.8
        # edges are matched by name and, by default, by MiniLM similarity of the names
        assert env_meta["edge_matcher"].value.startswith("minilm")
        assert 0 <= env_meta["dependency_edges_by_embedding"].value <= env_meta["dependency_edges"].value


def test_sft_datasets_respect_the_phase_split(pipeline):
    _, artifacts, _ = pipeline
    split = json.loads((artifacts / "sft" / "phase_split.json").read_text())
    assert split["held_out"]
    for phase, allowed in [(1, split["general"]), (2, split["vertical"])]:
        records = read_jsonl(artifacts / "sft" / f"phase{phase}.jsonl")
        assert records, f"phase {phase} dataset is empty"
        assert {r["domain_id"] for r in records} <= set(allowed)
        assert all(r["phase"] == phase and r["tools"] and r["messages"] for r in records)
        assert not {r["domain_id"] for r in records} & set(split["held_out"])


def test_training_and_evaluation(pipeline):
    instance, artifacts, _ = pipeline
    from safetensors.torch import load_file

    base = load_file(str(artifacts / "models" / "base" / "model.safetensors"))
    for phase in (1, 2):
        out = artifacts / "models" / f"phase{phase}"
        metrics = [m for m in read_jsonl(out / "metrics.jsonl") if "loss" in m]
        assert len(metrics) == 2 and all(m["loss"] == m["loss"] for m in metrics)
        tuned = load_file(str(out / "model.safetensors"))
        assert any(not tuned[k].equal(base[k]) for k in base if k in tuned), f"phase {phase} did not change the weights"
        assert "data:image/png;base64," in _materialization(instance, f"phase{phase}_checkpoint").metadata["loss_curve"].value
    report = json.loads((artifacts / "evaluation" / "eval_report.json").read_text())
    assert set(report["models"]) == {"base", "agentscaler"}
    held_out = set(json.loads((artifacts / "sft" / "phase_split.json").read_text())["held_out"])
    assert report["task_ids"] and set(report["domains"]) <= held_out
    for model in report["models"].values():
        assert model["tasks"] == len(report["task_ids"])
        assert all(0.0 <= float(v) <= 1.0 for v in model["pass_hat_k"].values())
    assert len(report["episodes"]) == 2 * len(report["task_ids"])  # two models, one trial each


def test_materializations_carry_data_versions_and_code_versions(pipeline):
    instance, _, _ = pipeline
    for key in ["api_corpus", "tool_graph", "domains", "sft_dataset_phase1", "base_model", "evaluation"]:
        materialization = _materialization(instance, key)
        assert len(materialization.tags["dagster/data_version"]) == 64
        assert "dagster/code_version" in materialization.tags


def test_per_domain_checks_are_recorded_per_partition(pipeline):
    instance, _, _ = pipeline
    key = dg.AssetCheckKey(dg.AssetKey("filtered_trajectories"), "funnel_floor")
    history = instance.event_log_storage.get_asset_check_execution_history(key, limit=1000)
    partitions = {record.event.dagster_event.event_specific_data.partition for record in history
                  if record.event and record.event.dagster_event}
    assert partitions == set(instance.get_dynamic_partitions("domain"))


# --- partial rebuilds (`agentscaler rebuild --changed`): these run last, on the instance above ---------------
def _defs_with_code_version(artifacts, asset: str, version: str) -> dg.Definitions:
    from agentscaler_dagster.assets import all_assets
    from agentscaler_dagster.definitions import build_defs

    key = dg.AssetKey(asset)
    base = build_defs(str(artifacts))
    changed = [a.map_asset_specs(lambda spec: spec.replace_attributes(code_version=version) if spec.key == key else spec)
               if isinstance(a, dg.AssetsDefinition) and key in a.keys else a for a in all_assets]
    return dg.Definitions(assets=changed, jobs=list(base.jobs), resources=base.resources)


def test_rebuild_after_a_full_run_rebuilds_nothing(pipeline):
    instance, artifacts, _ = pipeline
    result = rebuild_changed(instance=instance, artifacts_root=str(artifacts), profile="smoke", log=lambda *_: None)
    assert result == {"rebuilt": {}, "rounds": 0}


def test_rebuild_after_a_code_version_change_rebuilds_that_stage_and_what_changed_below(pipeline):
    instance, artifacts, _ = pipeline
    domains = instance.get_dynamic_partitions("domain")
    defs = _defs_with_code_version(artifacts, "tasks", "test-bump")
    # an edited code location exists only in this process: its runs execute here
    result = rebuild_changed(instance=instance, defs=defs, profile="smoke", log=lambda *_: None, launch="in_process")
    rebuilt = set(result["rebuilt"])
    assert {f"tasks[{d}]" for d in domains} <= rebuilt
    downstream = {"tasks", "trajectories", "filtered_trajectories", "sft_dataset_phase1", "sft_dataset_phase2",
                  "phase1_checkpoint", "phase2_checkpoint", "evaluation"}
    assert {name.split("[")[0] for name in rebuilt} <= downstream, rebuilt  # nothing upstream of tasks
    # tasks are seeded, so the rebuilt files are byte-identical: nothing below them became stale
    assert rebuilt == {f"tasks[{d}]" for d in domains}
    again = rebuild_changed(instance=instance, defs=defs, profile="smoke", log=lambda *_: None, launch="in_process")
    assert again["rebuilt"] == {}


def test_cli_runs_are_listed_under_their_jobs_in_the_ui(pipeline, repo_root):
    """What the UI's job page asks the webserver (GraphQL `pipelineOrError { runs }`), on the workspace.yaml
    code location: the CLI's runs are there, one per domain for domain_job."""
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    instance, _, summary = pipeline
    query = """query($selector: PipelineSelector!) { pipelineOrError(params: $selector) { __typename
      ... on Pipeline { runs { runId tags { key value } } } } }"""
    with define_out_of_process_context(str(repo_root / "workspace.yaml"), None, instance) as context:
        for job in ("corpus_job", "domain_job", "training_job"):
            result = execute_dagster_graphql(context, query, {"selector": {
                "repositoryLocationName": "agentscaler_dagster", "repositoryName": "__repository__", "pipelineName": job}})
            listed = {run["runId"] for run in result.data["pipelineOrError"]["runs"]}
            expected = {run_id for label, run_id in summary["runs"].items() if label.split("[")[0] == job}
            assert expected and expected <= listed, job
