"""Every stage checks the files it reads against what their writer recorded (issue 14, item 8).

Each kind of artifact is written by the project's own code (the CLI stages, envgen, the task sampler, the
rollouts with the oracle simulators, the filters, the SFT record builder, the base-model writer), then cut
short or changed, and the next stage's loader must refuse it naming the file; an untouched copy still loads.
The Dagster path is the same loaders inside the assets: a real instance materialises the `tasks` asset on a
package whose tools_module.py was cut in half. The per-domain asset checks report one result per domain.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from agentscaler_dagster.artifacts import ArtifactMismatch, read_package_json, seal_path, verify
from agentscaler_dagster.cli import main
from agentscaler_dagster.corpus import read_corpus
from agentscaler_dagster.domains.store import read_domains
from agentscaler_dagster.filters import apply_filters
from agentscaler_dagster.rollout import (
    OracleAgentSimulator,
    ScenarioUserSimulator,
    read_trajectories,
    run_rollouts,
    write_trajectories,
)
from agentscaler_dagster.sandbox import Environment
from agentscaler_dagster.sft import build_sft_records, read_sft_dataset, write_sft_dataset
from agentscaler_dagster.tasks import read_tasks, sample_tasks, write_tasks
from agentscaler_dagster.tasks.demo_domain import build_demo_package

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    """One artifact of each kind, each written by the code that writes it in the pipeline."""
    root = tmp_path_factory.mktemp("written")
    assert main(["ingest", str(REPO / "agentscaler_dagster" / "starter_corpus"), "--out", str(root / "corpus")]) == 0
    assert main(["domains", "--corpus", str(root / "corpus"), "--out", str(root / "domains"), "--embedder", "hashing"]) == 0
    package = Path(build_demo_package(root / "environment", from_snapshot=True))
    with Environment.load(package) as env:
        tasks = sample_tasks(env, n_tasks=6, seed=0)
        episodes = run_rollouts(tasks, env, lambda s: OracleAgentSimulator(s, error_rate=0.3), ScenarioUserSimulator,
                                trials=2, seed=0)
    write_tasks(tasks, root / "tasks.jsonl")
    write_trajectories(episodes, root / "trajectories.jsonl")
    kept = apply_filters(episodes, {t.task_id: t for t in tasks}).kept
    write_trajectories(kept, root / "filtered_trajectories.jsonl")
    records = build_sft_records(kept, {env.domain_id: json.loads((package / "tools.json").read_text())}, phase=1)
    write_sft_dataset(records, root / "phase1.jsonl")
    assert tasks and episodes and kept and records
    return {"root": root, "corpus": root / "corpus" / "corpus.parquet", "domains": root / "domains" / "domains.parquet",
            "environment": package, "tasks": root / "tasks.jsonl", "trajectories": root / "trajectories.jsonl",
            "filtered_trajectories": root / "filtered_trajectories.jsonl", "sft_dataset": root / "phase1.jsonl"}


# the next stage's loader of each kind of record file
LOADERS = {
    "corpus": read_corpus,
    "domains": read_domains,
    "tasks": read_tasks,
    "trajectories": read_trajectories,
    "filtered_trajectories": read_trajectories,
    "sft_dataset": read_sft_dataset,
}


def _copy(written: dict, kind: str, to: Path) -> Path:
    """The artifact and its seal, copied: each test damages its own copy."""
    source = written[kind]
    to.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, to / source.name)
    shutil.copy2(seal_path(source), seal_path(to / source.name))
    return to / source.name


def _cut_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _drop_last_record(path: Path) -> None:
    if path.suffix == ".parquet":  # a valid file with one row fewer: nothing but the seal can tell
        table = pq.read_table(path)
        pq.write_table(table.slice(0, table.num_rows - 1), path)
    else:  # whole lines dropped: every remaining line still parses
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        path.write_text("".join(lines[:-1]), encoding="utf-8")


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _flip_one_byte(path: Path) -> None:  # same size: only the hash sees it
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle] = data[middle] ^ 0x01
    path.write_bytes(bytes(data))


DAMAGE = {"cut_in_half": _cut_in_half, "drop_last_record": _drop_last_record, "empty": _empty,
          "flip_one_byte": _flip_one_byte}


@pytest.mark.parametrize("kind", list(LOADERS))
def test_an_untouched_artifact_loads(written, kind, tmp_path):
    path = _copy(written, kind, tmp_path)
    recorded = verify(path)
    assert recorded is not None and recorded["sha256"] and recorded["records"] > 0
    loaded = LOADERS[kind](path)
    assert len(loaded) == (recorded["records"] if kind != "domains" else len(set(
        pq.read_table(path, columns=["domain_id"]).column("domain_id").to_pylist())))


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("kind", list(LOADERS))
def test_a_damaged_artifact_is_refused_naming_the_file(written, kind, damage, tmp_path):
    path = _copy(written, kind, tmp_path)
    DAMAGE[damage](path)
    with pytest.raises(ArtifactMismatch, match=re.escape(str(path))) as refused:
        LOADERS[kind](path)
    message = str(refused.value)
    assert written[kind].read_bytes() != path.read_bytes()
    assert "sha256" in message and f"{verify(written[kind])['records']} records" in message, message


def test_the_next_cli_stage_refuses_a_corpus_with_rows_dropped(written, tmp_path, capsys):
    corpus = _copy(written, "corpus", tmp_path / "corpus")
    _drop_last_record(corpus)
    capsys.readouterr()
    assert main(["domains", "--corpus", str(corpus.parent), "--out", str(tmp_path / "domains"), "--embedder", "hashing"]) == 2
    err = capsys.readouterr().err
    assert "ArtifactMismatch" in err and str(corpus) in err
    assert not (tmp_path / "domains" / "domains.parquet").exists()


def test_trajectories_being_written_are_refused_until_sealed(written, tmp_path):
    """The rollouts append episode by episode; a run killed midway leaves a file nobody should read as done."""
    path = tmp_path / "trajectories.jsonl"
    tasks = read_tasks(written["tasks"])[:2]
    with Environment.load(written["environment"]) as env:
        episodes = run_rollouts(tasks, env, lambda s: OracleAgentSimulator(s, error_rate=0.0), ScenarioUserSimulator,
                                trials=1, seed=0, out_path=path)
    assert len(path.read_text().splitlines()) == len(episodes) == 2  # every episode is on disk ...
    with pytest.raises(ArtifactMismatch, match="never finished"):  # ... but the writer has not said it is done
        read_trajectories(path)
    write_trajectories(episodes, path)  # what the asset does once the rollouts return
    assert [t.trajectory_id for t in read_trajectories(path)] == [t.trajectory_id for t in episodes]


# ---- environment packages: checked against their manifest.json before anything runs --------------------------

def _package_copy(written, tmp_path) -> Path:
    return Path(shutil.copytree(written["environment"], tmp_path / "package"))


@pytest.mark.parametrize("name", ["tools_module.py", "tool_specs.json", "schema.json", "policy.json",
                                  "dependency_graph.json", "states/snapshot.json"])
def test_a_package_file_cut_short_is_refused_before_the_tools_run(written, tmp_path, name):
    package = _package_copy(written, tmp_path)
    with Environment.load(package) as env:  # untouched: loads and runs
        assert env.tools
    _cut_in_half(package / name)
    with pytest.raises(ArtifactMismatch, match=re.escape(str(package / name))):
        Environment.load(package)


def test_a_half_tools_module_is_not_served_with_the_surviving_tools(written, tmp_path):
    """The fault drill: half of tools_module.py still parses and serves the tools defined above the cut."""
    package = _package_copy(written, tmp_path)
    source = (package / "tools_module.py").read_text()
    (package / "tools_module.py").write_text(source[: source.index("\ndef ", len(source) // 2)] + "\n")
    with pytest.raises(ArtifactMismatch) as refused:
        Environment.load(package)
    message = str(refused.value)
    assert str(package / "tools_module.py") in message and json.loads(
        (package / "manifest.json").read_text())["files"]["tools_module.py"] in message


def test_package_files_missing_unlisted_or_read_one_by_one_are_checked(written, tmp_path):
    package = _package_copy(written, tmp_path)
    (package / "states" / "extra.json").write_text(json.dumps({"customers": {}}))
    with pytest.raises(ArtifactMismatch, match=re.escape(str(package / "states" / "extra.json"))):
        Environment.load(package)
    (package / "states" / "extra.json").unlink()
    (package / "schema.json").unlink()
    with pytest.raises(ArtifactMismatch, match=re.escape(str(package / "schema.json"))):
        Environment.load(package)
    # the filters and SFT assets read single files of the package (tool_specs.json, tools.json)
    assert read_package_json(package, "tools.json")
    _drop_last_record(package / "tools.json")
    with pytest.raises(ArtifactMismatch, match=re.escape(str(package / "tools.json"))):
        read_package_json(package, "tools.json")
    (package / "manifest.json").write_text("{\"files\": ")
    with pytest.raises(ArtifactMismatch, match=re.escape(str(package / "manifest.json"))):
        Environment.load(package)


# ---- checkpoints ---------------------------------------------------------------------------------------------

def test_a_checkpoint_changed_after_it_was_written_is_not_loaded(tmp_path):
    from agentscaler_dagster.sft import load_model_and_tokenizer, prepare_base_model

    model_dir = prepare_base_model(tmp_path / "base", source="tiny")
    weights = model_dir / "model.safetensors"
    assert verify(weights)["bytes"] == weights.stat().st_size
    _flip_one_byte(weights)  # the header still parses; one weight differs
    with pytest.raises(ArtifactMismatch, match=re.escape(str(weights))):
        load_model_and_tokenizer(model_dir)
    _cut_in_half(weights)
    with pytest.raises(ArtifactMismatch, match=re.escape(str(weights))):
        load_model_and_tokenizer(model_dir)


@pytest.mark.parametrize("name", ["tokenizer.json", "config.json", "chat_template.jinja"])
def test_a_checkpoint_whose_tokenizer_config_or_template_changed_is_not_loaded_or_served(tmp_path, name):
    from agentscaler_dagster.resources import VLLMServer
    from agentscaler_dagster.sft import load_model_and_tokenizer, prepare_base_model

    model_dir = prepare_base_model(tmp_path / "base", source="tiny")
    assert verify(model_dir / name) is not None  # sealed when written
    load_model_and_tokenizer(model_dir)
    _cut_in_half(model_dir / name)
    with pytest.raises(ArtifactMismatch, match=re.escape(str(model_dir / name))):
        load_model_and_tokenizer(model_dir)
    with pytest.raises(ArtifactMismatch, match=re.escape(str(model_dir / name))):
        VLLMServer(model=str(model_dir))._new_server()  # refused before any server process starts
    (model_dir / name).unlink()
    with pytest.raises(ArtifactMismatch, match="missing"):
        load_model_and_tokenizer(model_dir)


# ---- through Dagster: the assets read with the same loaders; per-domain checks are per partition ------------

def test_assets_refuse_a_damaged_input_and_checks_are_per_domain(written, tmp_path):
    from agentscaler_dagster.assets.environment import environment
    from agentscaler_dagster.assets.tasks import tasks
    from agentscaler_dagster.resources import ArtifactStore, LlamaCppServer, LLMEndpoint, VLLMServer

    root = tmp_path / "artifacts"
    for stage in ("corpus", "domains"):
        shutil.copytree(written[stage].parent, root / stage)
    smallest = sorted(read_domains(root / "domains").values(), key=lambda d: (len(d.tool_ids), d.domain_id))[:2]
    keys = [d.domain_id for d in smallest]
    resources = {"artifacts": ArtifactStore(root=str(root)), "llm": LLMEndpoint(), "vllm_server": VLLMServer(),
                 "llamacpp_server": LlamaCppServer()}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("domain", keys)
        for key in keys:
            built = dg.materialize([environment, tasks], partition_key=key, instance=instance, resources=resources,
                                   run_config={"ops": {"environment": {"config": {"edge_embedder": "hashing"}}}})
            assert built.success
        # one environment_validation result per domain, each with its partition, severity and description
        check = dg.AssetCheckKey(dg.AssetKey("environment"), "environment_validation")
        history = instance.event_log_storage.get_asset_check_execution_history(check, limit=100)
        evaluations = [r.event.dagster_event.event_specific_data for r in history if r.event and r.event.dagster_event]
        assert sorted(e.partition for e in evaluations) == sorted(keys)
        assert all(e.severity == dg.AssetCheckSeverity.ERROR and e.description for e in evaluations)

        module = root / "environments" / keys[0] / "tools_module.py"
        _cut_in_half(module)
        failed = dg.materialize([tasks], partition_key=keys[0], instance=instance, resources=resources,
                                raise_on_error=False)
        assert not failed.success
        (failure,) = failed.get_step_failure_events()
        error = failure.event_specific_data.error.to_string()
        assert "ArtifactMismatch" in error and str(module) in error, error
        assert dg.materialize([tasks], partition_key=keys[1], instance=instance, resources=resources).success
