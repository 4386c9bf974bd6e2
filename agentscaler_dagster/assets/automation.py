"""What the daemon builds on its own: the per-domain stages and the SFT datasets, when their inputs change.

- A per-domain stage (environment, tasks, trajectories, filtered trajectories) is requested when an upstream
  asset gets a new *data version*, not merely a new materialisation: data versions are content hashes, so an
  identical rebuild requests nothing below it. The stages of one domain chain within one tick (a stage is
  requested with its upstream), so a changed domain is one run, like `domain_job`; a new `domains` fans out
  to every domain.
- The SFT datasets are requested when a domain's filtered trajectories change, once no domain stage they
  read is in progress.
- Training and evaluation are not automated: a run on the `gpu` pool is a decision (`training_job`).
- Runs of `agentscaler materialize` / `rebuild` carry ``LAUNCHED_BY=cli`` and build their own downstream, so
  what they change requests nothing here: the daemon never runs a stage a second time behind the CLI.

Runs requested here carry ``LAUNCHED_BY=automation``; the instance caps how many run at once
(`tag_concurrency_limits` in dagster.yaml).
"""

from __future__ import annotations

import dagster as dg

LAUNCHED_BY = "agentscaler/launched_by"
CLI_RUN_TAGS = {LAUNCHED_BY: "cli"}
AUTOMATION_RUN_TAGS = {LAUNCHED_BY: "automation"}

AC = dg.AutomationCondition


def upstream_data_changed(ignore: list[str] | None = None) -> dg.AutomationCondition:
    """A dependency (less ``ignore``) got a new data version in a run that was not the CLI's."""
    changed = AC.data_version_changed() & ~AC.all_new_updates_have_run_tags(tag_values=CLI_RUN_TAGS)
    deps = AC.any_deps_match(changed)
    if ignore:
        deps = deps.ignore(dg.AssetSelection.assets(*ignore))
    return deps.with_label("upstream data changed (not by the CLI)")


def domain_stage() -> dg.AutomationCondition:
    """``eager``, on data versions, chained within a tick, never behind a failed blocking check."""
    return (
        (upstream_data_changed().since_last_handled() | AC.any_deps_match(AC.will_be_requested()))
        & ~AC.any_deps_missing()
        & ~AC.any_deps_in_progress()
        & AC.all_deps_blocking_checks_passed()
        & ~AC.in_progress()
    ).with_label("on upstream data change")


def dataset() -> dg.AutomationCondition:
    """Rebuilt when a domain's filtered trajectories change, once no domain it reads is in progress: one run
    after a fan-out, not one per finished domain. A changed environment counts through its domain's run (the
    daemon cannot see, in the tick that requests that run, that it is coming, and would build too early)."""
    return (
        upstream_data_changed(ignore=["environment"]).since_last_handled()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    ).with_label("on new filtered trajectories, once no domain is in progress")


def with_condition(assets: list, condition: dg.AutomationCondition) -> list:
    """The same assets with ``condition`` on every spec (the stage modules stay free of scheduling)."""
    return [a.map_asset_specs(lambda spec: spec.replace_attributes(automation_condition=condition)) for a in assets]


def automation_sensor(selection: dg.AssetSelection) -> dg.AutomationConditionSensorDefinition:
    """Evaluates the conditions above; on by default, so a running daemon (`dagster dev`, the compose
    deployment) acts on them. One run per domain, not a backfill: the run queue caps them."""
    return dg.AutomationConditionSensorDefinition(
        "pipeline_automation",
        target=selection,
        default_status=dg.DefaultSensorStatus.RUNNING,
        run_tags=AUTOMATION_RUN_TAGS,
        emit_backfills=False,
        description="Per-domain stages and SFT datasets, when their inputs' data versions change.",
    )
