"""The automation conditions of the per-domain stages and SFT datasets, evaluated by Dagster's own evaluator.

Real: the code location's asset graph with its automation conditions, a sqlite instance, real runs with real
run tags, `dg.evaluate_automation_conditions` tick after tick. Stand-in: each asset's body, which reports only
the data version the test gives it (the conditions read data versions, runs and tags, never the files).
"""

from __future__ import annotations

import dagster as dg
import pytest

from agentscaler_dagster.assets import all_assets
from agentscaler_dagster.assets.automation import CLI_RUN_TAGS
from agentscaler_dagster.definitions import defs

DOMAIN_STAGES = ["environment", "tasks", "trajectories", "filtered_trajectories"]
DATASETS = ["sft_dataset_phase1", "sft_dataset_phase2"]
VERSIONS: dict[tuple[str, str | None], str] = {}


def _stand_in(assets_def: dg.AssetsDefinition) -> dg.AssetsDefinition:
    specs = list(assets_def.specs)  # in the order the real asset yields them (upstream first)

    @dg.multi_asset(specs=specs, name=f"{assets_def.node_def.name}_stand_in", can_subset=True)
    def _body(context):
        partition = context.partition_key if context.has_partition_key else None
        for key in [spec.key for spec in specs if spec.key in context.selected_asset_keys]:
            yield dg.MaterializeResult(
                asset_key=key, data_version=dg.DataVersion(VERSIONS.get((key.to_user_string(), partition), "v0")))

    return _body


class World:
    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance
        self.assets = [_stand_in(a) for a in all_assets]
        self.cursor = None

    def build(self, names: list[str], partition: str | None = None, *, version: str = "v0", by: str = "ui") -> None:
        for name in names:
            VERSIONS[(name, partition)] = version
        outcome = dg.materialize(self.assets, instance=self.instance, partition_key=partition, selection=names,
                                 tags=CLI_RUN_TAGS if by == "cli" else None)
        assert outcome.success

    def tick(self) -> set[str]:
        """One evaluation of the sensor's conditions; what it would request, as ``asset[partition]``."""
        result = dg.evaluate_automation_conditions(defs=self.assets, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        requested = set()
        for key in defs.resolve_asset_graph().get_all_asset_keys():
            for partition in result.get_requested_partitions(key):
                requested.add(key.to_user_string() + (f"[{partition}]" if partition else ""))
        return requested


@pytest.fixture
def world(tmp_path):
    VERSIONS.clear()
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions("domain", ["alpha", "beta"])
        world = World(instance)
        # everything built once by `agentscaler materialize`, then the daemon's first tick
        world.build(["api_corpus", "tool_graph", "domains"], by="cli")
        for domain in ("alpha", "beta"):
            world.build(DOMAIN_STAGES, domain, by="cli")
        world.build([*DATASETS, "base_model", "phase1_checkpoint", "phase2_checkpoint", "evaluation"], by="cli")
        assert world.tick() == set()
        yield world


def test_the_stages_and_datasets_carry_conditions_and_training_does_not():
    graph = defs.resolve_asset_graph()
    conditioned = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).automation_condition}
    assert conditioned == set(DOMAIN_STAGES + DATASETS)
    sensor = defs.resolve_sensor_def("pipeline_automation")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.run_tags == {"agentscaler/launched_by": "automation"}


def test_a_changed_environment_requests_its_domain_in_one_tick_and_then_the_datasets(world):
    world.build(["environment"], "alpha", version="v1")  # e.g. rebuilt from the UI with another seed
    assert world.tick() == {"tasks[alpha]", "trajectories[alpha]", "filtered_trajectories[alpha]"}
    # the domain's run finishes; its trajectories changed too
    world.build(["tasks", "trajectories", "filtered_trajectories"], "alpha", version="v1")
    assert world.tick() == set(DATASETS)
    world.build(DATASETS, version="v1")
    assert world.tick() == set()


def test_a_new_domains_version_fans_out_to_every_domain(world):
    world.build(["domains"], version="v1")
    expected = {f"{stage}[{d}]" for stage in DOMAIN_STAGES for d in ("alpha", "beta")}
    assert world.tick() == expected


def test_a_rebuild_with_the_same_data_version_requests_nothing(world):
    world.build(["domains"], version="v0")
    world.build(["environment"], "beta", version="v0")
    world.build(["filtered_trajectories"], "alpha", version="v0")
    assert world.tick() == set()


def test_what_the_cli_changed_requests_nothing(world):
    """`agentscaler materialize` builds everything below a change itself: the daemon must not build it again."""
    world.build(["domains"], version="v2", by="cli")
    world.build(["environment", "tasks"], "beta", version="v2", by="cli")
    assert world.tick() == set()


def test_the_datasets_wait_while_a_domain_is_in_progress(world):
    world.build(["filtered_trajectories"], "alpha", version="v1")
    # domain beta's run has started and not finished
    job = dg.Definitions(assets=world.assets).resolve_implicit_global_asset_job_def()
    busy = world.instance.create_run_for_job(
        job, asset_selection=frozenset({dg.AssetKey("filtered_trajectories")}), tags={"dagster/partition": "beta"})
    assert world.tick() == set()
    world.instance.report_run_failed(busy)
    assert world.tick() == set(DATASETS)
