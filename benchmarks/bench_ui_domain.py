"""One domain from the UI against the same domain from the CLI (issue 14, item 9).

    .venv/bin/python benchmarks/bench_ui_domain.py [--domains 2] [--keep]

A fresh sqlite instance and artifact root. The corpus run goes through the CLI's code path; then, for each
of the first ``--domains`` domains, alternately:

- CLI: ``domain_job`` for the domain as `agentscaler materialize --in-process` runs it (``execute_in_process``
  on the instance, the default profile's run config; without ``--in-process`` the CLI now launches its runs
  through the run launcher as the UI does, minus the queue);
- UI: the same job, partition and run config launched through the webserver's GraphQL (``launchRun``, what
  the launchpad's button sends) on a running ``dagster dev`` (webserver + daemon: queued run coordinator,
  the default run launcher's subprocess, the code location's process).

Each run starts from the same inputs: the domain's per-stage artifacts are removed before it. Timed: from
launch to the run's success as the instance records it; the run's own start-to-end time beside it. The
automation sensor is stopped first so that it launches nothing of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LOCATION = "agentscaler_dagster.definitions"
REPOSITORY = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}
LAUNCH_RUN = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }"""
RUN_STATUS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status startTime endTime } } }"""
SENSOR = """query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) { __typename
  ... on Sensor { jobOriginId sensorState { selectorId status } } } }"""
STOP_SENSOR = """mutation($origin: String!, $selector: String!) { stopSensor(jobOriginId: $origin, jobSelectorId: $selector) {
  __typename ... on StopSensorMutationResult { instigationState { status } } } }"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the temporary home and artifacts")
    args = parser.parse_args()
    import httpx

    from agentscaler_dagster.artifacts import ArtifactLayout
    from agentscaler_dagster.serving import free_port

    work = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    home, artifacts = work / "home", work / "artifacts"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    os.environ.update(DAGSTER_HOME=str(home), AGENTSCALER_ARTIFACTS=str(artifacts))
    print(f"# {os.uname().nodename}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, work {work}", flush=True)

    import dagster as dg

    from agentscaler_dagster.assets import domain_partitions
    from agentscaler_dagster.definitions import build_defs
    from agentscaler_dagster.pipeline_cli import run_config_for

    defs = build_defs(str(artifacts))
    instance = dg.DagsterInstance.get()
    started = time.monotonic()
    corpus = defs.resolve_job_def("corpus_job").execute_in_process(
        run_config=run_config_for(defs, "default", "corpus_job"), instance=instance, raise_on_error=True)
    print(f"corpus_job {time.monotonic() - started:.1f} s (run {corpus.run_id})", flush=True)
    domains = instance.get_dynamic_partitions(domain_partitions.name)[: args.domains]
    layout = ArtifactLayout(str(artifacts))
    run_config = run_config_for(defs, "default", "domain_job")

    def clear(domain: str) -> None:
        for folder in (layout.environment(domain), layout.tasks(domain), layout.trajectories(domain),
                       layout.filtered(domain)):
            shutil.rmtree(folder, ignore_errors=True)

    port = free_port()
    log = open(work / "dagster_dev.log", "wb")
    dev = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-m", LOCATION, "-h", "127.0.0.1",
                            "-p", str(port)], cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT,
                           start_new_session=True)
    url = f"http://127.0.0.1:{port}/graphql"

    def graphql(query: str, **variables) -> dict:
        reply = httpx.post(url, json={"query": query, "variables": variables}, timeout=60).json()
        if reply.get("errors"):
            raise RuntimeError(reply["errors"])
        return reply["data"]

    rows = []
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                sensor = graphql(SENSOR, selector={**REPOSITORY, "sensorName": "pipeline_automation"})["sensorOrError"]
                if sensor["__typename"] == "Sensor":
                    break
            except (httpx.HTTPError, ValueError, RuntimeError):
                pass
            if time.monotonic() > deadline or dev.poll() is not None:
                raise RuntimeError(f"dagster dev did not serve the location; see {work / 'dagster_dev.log'}")
            time.sleep(2)
        if sensor["sensorState"]["status"] == "RUNNING":
            graphql(STOP_SENSOR, origin=sensor["jobOriginId"], selector=sensor["sensorState"]["selectorId"])
        for domain in domains:
            clear(domain)
            t0 = time.monotonic()
            outcome = defs.resolve_job_def("domain_job").execute_in_process(
                run_config=run_config, instance=instance, partition_key=domain, raise_on_error=True)
            cli_s = time.monotonic() - t0
            record = instance.get_run_record_by_id(outcome.run_id)
            cli_run_s = record.end_time - record.start_time

            clear(domain)
            t0 = time.monotonic()
            launched = graphql(LAUNCH_RUN, params={
                "selector": {**REPOSITORY, "jobName": "domain_job"}, "runConfigData": run_config,
                "executionMetadata": {"tags": [{"key": "dagster/partition", "value": domain}]},
            })["launchRun"]
            if launched["__typename"] != "LaunchRunSuccess":
                raise RuntimeError(launched)
            run_id = launched["run"]["runId"]
            while True:
                run = graphql(RUN_STATUS, id=run_id)["runOrError"]
                if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
                    break
                time.sleep(0.25)
            ui_s = time.monotonic() - t0
            if run["status"] != "SUCCESS":
                raise RuntimeError(f"UI run {run_id} of {domain}: {run['status']}")
            row = {"domain": domain, "cli_s": round(cli_s, 1), "cli_run_s": round(cli_run_s, 1),
                   "ui_s": round(ui_s, 1), "ui_run_s": round(run["endTime"] - run["startTime"], 1),
                   "ui_over_cli": round(ui_s / cli_s, 2), "load": round(os.getloadavg()[0], 1)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    total_cli = sum(r["cli_s"] for r in rows)
    total_ui = sum(r["ui_s"] for r in rows)
    print(json.dumps({"domains": len(rows), "cli_s": round(total_cli, 1), "ui_s": round(total_ui, 1),
                      "ui_over_cli": round(total_ui / total_cli, 2) if total_cli else None}))


if __name__ == "__main__":
    main()
