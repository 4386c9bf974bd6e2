"""The instance's run coordinator: the queue, with each run's config values checked before it is queued.

Dagster's config schema knows types, not bounds, so a run launched from the UI with ``max_files: -3`` would be
queued, start a worker and fail in its first step (or worse, ingest all but the last three files). The CLI
refuses such values before it starts anything (``pipeline_cli.check_values``); this coordinator applies the
same check to every run submitted to the instance (the launchpad, backfills, sensors, schedules), and fails the
run with the field and the reason before it is queued, so no worker starts. Configured in ``dagster.yaml`` and
``docker/dagster.yaml``; the queue, its limits and the daemon work as with ``QueuedRunCoordinator``.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.run_coordinator import SubmitRunContext


class CheckedRunCoordinator(dg.QueuedRunCoordinator):
    """``QueuedRunCoordinator`` that fails a run whose op config breaks a setting's bounds instead of queueing it."""

    def submit_run(self, context: SubmitRunContext) -> dg.DagsterRun:
        run = context.dagster_run
        problem = config_problem(run.run_config) if run.status == dg.DagsterRunStatus.NOT_STARTED else None
        if problem is None:
            return super().submit_run(context)
        self._instance.report_run_failed(run, message=f"refused before it was queued: {problem}")
        return self._instance.get_run_by_id(run.run_id)


def config_problem(run_config: dict | None) -> str | None:
    """What is wrong with the op config values of ``run_config`` (the first problem), or None."""
    from agentscaler_dagster.definitions import defs
    from agentscaler_dagster.pipeline_cli import ConfigError, check_values

    for node, op in ((run_config or {}).get("ops") or {}).items():
        values = op.get("config") if isinstance(op, dict) else None
        if not isinstance(values, dict):
            continue
        try:
            check_values(defs, node, values)
        except ConfigError as exc:
            return str(exc).removeprefix("--config: ")
    return None
