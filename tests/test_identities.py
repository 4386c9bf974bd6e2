"""Stable identities: an identical re-run leaves everything downstream fresh, and domain keys survive corpus edits.

Real: a Dagster instance (sqlite), the code location's jobs executed in process as `agentscaler materialize`
runs them (smoke-sized: three starter specs, four tasks, one trial), the sandboxed environments, the MiniLM
embedder, and Dagster's own stale status (what `agentscaler rebuild --changed` and the UI read).
"""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.definitions.data_version import StaleStatus

from agentscaler_dagster.artifacts import file_digest
from agentscaler_dagster.definitions import build_defs
from agentscaler_dagster.pipeline_cli import run_config_for, stale_status_resolver
from agentscaler_dagster.starter_corpus import starter_corpus_files

DATASETS = [dg.AssetKey("sft_dataset_phase1"), dg.AssetKey("sft_dataset_phase2")]


class Pipeline:
    def __init__(self, instance: dg.DagsterInstance, artifacts):
        self.instance = instance
        self.artifacts = artifacts
        self.defs = build_defs(str(artifacts))

    def run(self, job_name: str, partition: str | None = None, overrides: dict | None = None, selection=None):
        job = self.defs.resolve_job_def(job_name)
        outcome = job.execute_in_process(run_config=run_config_for(self.defs, "smoke", job_name, overrides),
                                         instance=self.instance, partition_key=partition, asset_selection=selection)
        assert outcome.success
        return outcome

    def domains(self) -> list[str]:
        return list(self.instance.get_dynamic_partitions("domain"))

    def version(self, key: str, partition: str | None = None) -> str:
        record = self.instance.get_latest_data_version_record(dg.AssetKey(key), partition_key=partition)
        return record.asset_materialization.tags["dagster/data_version"]

    def not_fresh(self) -> dict[str, str]:
        """Every materialised asset (partition) that Dagster does not call fresh, with its status."""
        graph = self.defs.resolve_asset_graph()
        resolver = stale_status_resolver(self.instance, graph)
        found = {}
        for key in graph.get_all_asset_keys():
            for partition in self.domains() if graph.get(key).is_partitioned else [None]:
                status = resolver.get_status(key, partition)
                if status != StaleStatus.FRESH and status != StaleStatus.MISSING:
                    causes = [c.reason for c in resolver.get_stale_root_causes(key, partition)]
                    found[f"{key.to_user_string()}[{partition}]"] = f"{status.value}: {causes}"
        return found


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("identities")
    (root / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "dagster_home")) as instance:
        pipeline = Pipeline(instance, root / "artifacts")
        pipeline.run("corpus_job")
        for domain in pipeline.domains():
            pipeline.run("domain_job", domain)
        # a dataset the smoke split leaves empty fails its blocking check; it is materialised all the same
        job = pipeline.defs.resolve_job_def("training_job")
        job.execute_in_process(run_config=run_config_for(pipeline.defs, "smoke", "training_job"), instance=instance,
                               asset_selection=DATASETS, raise_on_error=False)
        assert all(instance.get_latest_data_version_record(key) for key in DATASETS)
        yield pipeline


def test_an_identical_rerun_of_a_domain_leaves_everything_downstream_fresh(pipeline):
    domain = pipeline.domains()[0]
    trajectories = pipeline.artifacts / "trajectories" / domain / "trajectories.jsonl"
    before = {key: pipeline.version(key, domain) for key in ("environment", "tasks", "trajectories", "filtered_trajectories")}
    first_bytes = file_digest(trajectories)
    # the same settings, every episode played again (not resumed from the file)
    pipeline.run("domain_job", domain, overrides={"trajectories": {"resume": False}})
    after = {key: pipeline.version(key, domain) for key in before}
    assert after == before
    # the episodes' wall-clock timings differ between the runs; the data versions do not see them
    if file_digest(trajectories) == first_bytes:
        pytest.fail("the re-run wrote byte-identical trajectories: this test no longer shows that timings are ignored")
    assert pipeline.not_fresh() == {}


def test_a_spec_removed_from_the_corpus_retires_its_domain_and_keeps_the_other_keys(pipeline):
    """Runs last: it changes the corpus of the instance above."""
    keys = pipeline.domains()
    files = sorted(str(p) for p in starter_corpus_files())[:3]
    dropped = files[1]
    pipeline.run("corpus_job", overrides={"api_corpus": {"paths": [f for f in files if f != dropped]}})
    now = pipeline.domains()
    assert len(now) == len(keys) - 1 and set(now) < set(keys), (keys, now)
    [retired] = set(keys) - set(now)
    domains = pipeline.instance.fetch_materializations(dg.AssetKey("domains"), limit=1).records[0]
    assert domains.asset_materialization.metadata["retired_domains"].value == [retired]
    # retiring the key kept the domain's history
    history = pipeline.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("environment"), asset_partitions=[retired]), limit=10).records
    assert history and all(record.partition_key == retired for record in history)
