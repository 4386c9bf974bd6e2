"""The docker-compose topology, run as processes: Postgres, a gRPC code server, the webserver, the daemon.

No container image can be pulled here, so the same parts run as local processes with the same instance
file (docker/dagster.yaml: Postgres storage, QueuedRunCoordinator, run monitoring) and the same commands as
docker-compose.yml. Real parts only: Debian's PostgreSQL (installed by this fixture when missing and run
as root), `dagster code-server start`, `dagster-webserver`, `dagster-daemon run`, GraphQL over HTTP.

The test launches the corpus run and then a backfill over the domain partitions through GraphQL, kills
the daemon in the middle of the backfill, starts it again, and checks that every run and every per-domain
materialisation is in Postgres, none lost and none twice.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCATION = "agentscaler_dagster"
DOMAIN_ASSETS = ("environment", "tasks", "trajectories", "filtered_trajectories")

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; the Debian package creates its own user
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    bindir = _postgres_bin()
    if bindir is None and os.geteuid() == 0 and shutil.which("apt-get"):
        install = ["apt-get", "install", "-y", "-qq", "postgresql"]
        if subprocess.run(install, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
            subprocess.run(install, capture_output=True, check=True)
        bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    # not under pytest's base folder: that one is private to root, and other pytest runs reset its mode
    root = Path(tempfile.mkdtemp(prefix="agentscaler-postgres-"))
    data, sockets = root / "data", root / "sockets"
    data.mkdir()
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        for folder in (data, sockets):
            shutil.chown(folder, "postgres")
        root.chmod(0o755)
    subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "dagster", "-A", "trust"]),
                   check=True, capture_output=True)
    port = _free_port()
    server = subprocess.Popen(
        _as_postgres([str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets),
                      "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    import psycopg2

    deadline = time.monotonic() + 60
    while True:
        try:
            psycopg2.connect(host="127.0.0.1", port=port, user="dagster", dbname="postgres").close()
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise
            time.sleep(0.5)
    connection = psycopg2.connect(host="127.0.0.1", port=port, user="dagster", dbname="postgres")
    connection.autocommit = True
    connection.cursor().execute("CREATE DATABASE dagster")
    connection.close()
    yield {"host": "127.0.0.1", "port": port, "user": "dagster", "password": "dagster", "db": "dagster"}
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)
    shutil.rmtree(root, ignore_errors=True)


class _Deployment:
    def __init__(self, root: Path, pg: dict) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir()
        # the compose file's instance file, as it is
        shutil.copy(REPO / "docker" / "dagster.yaml", self.home / "dagster.yaml")
        compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
        self.compose = compose["services"]
        self.grpc_port, self.web_port = _free_port(), _free_port()
        workspace = yaml.safe_load((REPO / "docker" / "workspace.yaml").read_text())
        workspace["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=self.grpc_port)
        self.workspace = self.home / "workspace.yaml"
        self.workspace.write_text(yaml.safe_dump(workspace))
        self.env = {
            "PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(root), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "DAGSTER_HOME": str(self.home), "AGENTSCALER_ARTIFACTS": str(root / "artifacts"),
            "DAGSTER_POSTGRES_HOST": pg["host"], "DAGSTER_POSTGRES_PORT": str(pg["port"]),
            "DAGSTER_POSTGRES_USER": pg["user"], "DAGSTER_POSTGRES_PASSWORD": pg["password"],
            "DAGSTER_POSTGRES_DB": pg["db"],
        }
        if os.environ.get("PYTHONPATH"):
            self.env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        self.processes: dict[str, subprocess.Popen] = {}
        self.url = f"http://127.0.0.1:{self.web_port}/graphql"

    def _command(self, service: str) -> list[str]:
        """The compose service's command, pointed at this machine's ports and files."""
        command = list(self.compose[service]["command"])
        command[0] = str(BIN / command[0])
        replace = {"0.0.0.0": "127.0.0.1", "4000": str(self.grpc_port), "3000": str(self.web_port),
                   "/opt/dagster/home/workspace.yaml": str(self.workspace)}
        return [replace.get(part, part) for part in command]

    def start(self, service: str) -> None:
        log = open(self.root / f"{service}.log", "ab")
        self.processes[service] = subprocess.Popen(self._command(service), env=self.env, cwd=self.root,
                                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, service: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes.pop(service)
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        process.wait(timeout=60)

    def stop_all(self) -> None:
        for service in list(self.processes):
            self.kill(service, signal.SIGTERM)

    def instance(self):
        """The instance as the services see it (Postgres through the same instance file)."""
        import dagster as dg
        from dagster._core.instance.ref import InstanceRef

        with mock.patch.dict(os.environ, {k: v for k, v in self.env.items() if k.startswith("DAGSTER_POSTGRES")}):
            return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(self.home)))

    def graphql(self, query: str, **variables) -> dict:
        response = httpx.post(self.url, json={"query": query, "variables": variables}, timeout=60)
        if response.status_code >= 500:
            raise AssertionError(f"GraphQL answered {response.status_code}: {response.text[:2000]}")
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def wait_until(self, what: str, predicate, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except (httpx.HTTPError, OSError):
                pass
            for service, process in self.processes.items():
                assert process.poll() is None, f"{service} died: {self.tail(service)}"
            time.sleep(1)
        logs = "\n".join(f"--- {s}\n{self.tail(s)}" for s in ("user_code", "webserver", "daemon"))
        raise AssertionError(f"timed out waiting for {what}\n{logs}")

    def tail(self, service: str) -> str:
        path = self.root / f"{service}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


REPOSITORY = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}
LOCATION_STATUS = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
LAUNCH_RUN = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }"""
RUN_STATUS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""
LAUNCH_BACKFILL = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
BACKFILL = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill {
  status numPartitions partitionStatuses { results { partitionName runStatus } } } } }"""
SENSOR = """query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) { __typename
  ... on Sensor { jobOriginId sensorState { selectorId status } } } }"""
STOP_SENSOR = """mutation($origin: String!, $selector: String!) { stopSensor(jobOriginId: $origin, jobSelectorId: $selector) {
  __typename ... on StopSensorMutationResult { instigationState { status } } ... on PythonError { message } } }"""


def _location_loaded(d: _Deployment) -> bool:
    entries = d.graphql(LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
    entry = next(e for e in entries if e["name"] == LOCATION)
    loaded = entry["loadStatus"] == "LOADED"
    if loaded:
        error = entry["locationOrLoadError"]
        assert error["__typename"] == "RepositoryLocation", error
    return loaded


def test_backfill_survives_a_daemon_kill_and_lands_in_postgres(postgres, tmp_path):
    import dagster as dg

    d = _Deployment(tmp_path, postgres)
    try:
        d.start("user_code")
        # the webserver gives up on a location it cannot reach at start: wait for the code server first
        health = [str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(d.grpc_port), "-h", "127.0.0.1"]
        d.wait_until("the code server", lambda: subprocess.run(health, capture_output=True, env=d.env,
                                                               timeout=30).returncode == 0, timeout=240)
        d.start("webserver")
        d.start("daemon")
        d.wait_until("the code location to load", lambda: _location_loaded(d), timeout=240)
        # the automation is on by default; this test is about the backfill alone: with the sensor on, the
        # daemon would also build every domain after the corpus run (tests/test_automation.py)
        sensor = d.graphql(SENSOR, selector={**REPOSITORY, "sensorName": "pipeline_automation"})["sensorOrError"]
        assert sensor["sensorState"]["status"] == "RUNNING", sensor
        stopped = d.graphql(STOP_SENSOR, origin=sensor["jobOriginId"], selector=sensor["sensorState"]["selectorId"])
        assert stopped["stopSensor"]["instigationState"]["status"] == "STOPPED", stopped

        corpus = d.graphql(LAUNCH_RUN, params={
            "selector": {**REPOSITORY, "jobName": "corpus_job"},
            "runConfigData": {"ops": {"api_corpus": {"config": {"max_files": 3}},
                                      "tool_graph_and_domains": {"config": {"max_domain_share": 0.5}}}},
        })["launchRun"]
        assert corpus["__typename"] == "LaunchRunSuccess", corpus
        corpus_id = corpus["run"]["runId"]
        status = lambda run_id: d.graphql(RUN_STATUS, id=run_id)["runOrError"]["status"]  # noqa: E731
        d.wait_until("the corpus run", lambda: status(corpus_id) in ("SUCCESS", "FAILURE"), timeout=600)
        assert status(corpus_id) == "SUCCESS", d.tail("daemon")

        with d.instance() as instance:
            domains = instance.get_dynamic_partitions("domain")
        assert len(domains) >= 2, domains

        launched = d.graphql(LAUNCH_BACKFILL, params={
            "selector": {"partitionSetName": "domain_job_partition_set", "repositorySelector": REPOSITORY},
            "partitionNames": domains,
        })["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]

        def run_statuses() -> list:
            results = d.graphql(BACKFILL, id=backfill_id)["partitionBackfillOrError"]["partitionStatuses"]["results"]
            return [r["runStatus"] for r in results]

        # the daemon dies while the backfill is under way, and comes back
        d.wait_until("a backfill run to start", lambda: any(s in ("STARTED", "SUCCESS") for s in run_statuses()),
                     timeout=300)
        d.kill("daemon")
        time.sleep(3)
        d.start("daemon")
        d.wait_until("the backfill to finish",
                     lambda: d.graphql(BACKFILL, id=backfill_id)["partitionBackfillOrError"]["status"]
                     in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"),
                     timeout=900)
        backfill = d.graphql(BACKFILL, id=backfill_id)["partitionBackfillOrError"]
        assert backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), backfill
        assert backfill["numPartitions"] == len(domains)
    finally:
        d.stop_all()

    # everything is in Postgres: one successful run per domain, one materialisation per domain and asset
    with d.instance() as instance:
        assert "postgres" in type(instance.run_storage).__module__
        runs = instance.get_runs(dg.RunsFilter(job_name="domain_job"))
        by_domain: dict[str, list] = {}
        for run in runs:
            by_domain.setdefault(run.tags.get("dagster/partition"), []).append(run)
        assert sorted(by_domain) == sorted(domains), by_domain.keys()
        for domain, domain_runs in by_domain.items():
            assert [r.status for r in domain_runs] == [dg.DagsterRunStatus.SUCCESS], (domain, domain_runs)
        for asset in DOMAIN_ASSETS:
            records = instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
            partitions = sorted(r.partition_key for r in records)
            assert partitions == sorted(domains), (asset, partitions)
