"""The real webserver (`dagster dev` on 127.0.0.1) serves every asset of the graph over GraphQL.

Real: the dagster dev process (webserver + daemon), its sqlite instance, its GraphQL endpoint.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from agentscaler_dagster.definitions import defs

QUERY = "{ assetNodes { assetKey { path } partitionDefinition { name } } }"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_dagster_dev_serves_every_asset(repo_root: Path, tmp_path: Path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((repo_root / "dagster.yaml").read_text())
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "AGENTSCALER_ARTIFACTS": str(tmp_path / "artifacts")}
    dagster = Path(sys.executable).parent / "dagster"
    log = open(tmp_path / "dagster_dev.log", "wb")
    # its own session, so that the whole process group can be stopped by its PID
    proc = subprocess.Popen(
        [str(dagster), "dev", "-m", "agentscaler_dagster.definitions", "-h", "127.0.0.1", "-p", str(port)],
        cwd=repo_root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        nodes = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                reply = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}, timeout=10)
                data = reply.json().get("data") or {}
                if data.get("assetNodes"):
                    nodes = data["assetNodes"]
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(2)
        assert nodes, f"no asset nodes from the webserver; log:\n{(tmp_path / 'dagster_dev.log').read_text()[-3000:]}"
        served = {"/".join(n["assetKey"]["path"]) for n in nodes}
        expected = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
        assert served == expected
        partitioned = {"/".join(n["assetKey"]["path"]) for n in nodes if (n["partitionDefinition"] or {}).get("name")}
        assert {"environment", "tasks", "trajectories", "filtered_trajectories"} <= partitioned
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()
    assert proc.returncode is not None


LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus locationOrLoadError { __typename } } } } }"


@pytest.mark.slow
def test_dg_dev_serves_the_project_under_the_location_name_the_cli_runs_carry(repo_root: Path, tmp_path: Path):
    """`dg dev` (dagster-dg-cli) reads pyproject's [tool.dg] and names the location as the CLI's runs are tagged,
    whatever the checkout's folder is called."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((repo_root / "dagster.yaml").read_text())
    port = _free_port()
    bindir = Path(sys.executable).parent
    env = {**os.environ, "DAGSTER_HOME": str(home), "AGENTSCALER_ARTIFACTS": str(tmp_path / "artifacts"),
           "VIRTUAL_ENV": str(bindir.parent), "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = open(tmp_path / "dg_dev.log", "wb")
    proc = subprocess.Popen([str(bindir / "dg"), "dev", "-h", "127.0.0.1", "-p", str(port)], cwd=repo_root, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        entries = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                reply = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": LOCATIONS}, timeout=10)
                found = ((reply.json().get("data") or {}).get("workspaceOrError") or {}).get("locationEntries")
                if found and all(e["loadStatus"] == "LOADED" for e in found):
                    entries = found
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(2)
        assert entries, f"dg dev loaded no location; log:\n{(tmp_path / 'dg_dev.log').read_text()[-3000:]}"
        assert [(e["name"], e["locationOrLoadError"]["__typename"]) for e in entries] == [("agentscaler_dagster", "RepositoryLocation")]
        nodes = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}, timeout=30).json()["data"]["assetNodes"]
        assert {"/".join(n["assetKey"]["path"]) for n in nodes} == {
            k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()
