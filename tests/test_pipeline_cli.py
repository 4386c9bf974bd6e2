"""`agentscaler materialize --config`: mistakes are refused before any run starts.

Real parts: the code location's definitions, Dagster's own config validation, the CLI in a subprocess on a
fresh instance (which must hold no run afterwards).
"""

from __future__ import annotations

import subprocess
import sys

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from agentscaler_dagster.definitions import build_defs
from agentscaler_dagster.pipeline_cli import ConfigError, validate_overrides


@pytest.fixture(scope="module")
def defs(tmp_path_factory):
    return build_defs(str(tmp_path_factory.mktemp("artifacts")))


def test_asset_names_map_to_their_ops(defs):
    resolved = validate_overrides(defs, "default", {"domains": {"max_domain_share": 0.2}, "tasks": {"n_tasks": 3}})
    assert resolved == {"tool_graph_and_domains": {"max_domain_share": 0.2}, "tasks": {"n_tasks": 3}}


@pytest.mark.parametrize("overrides, says", [
    ({"taskz": {"n_tasks": 3}}, "unknown asset or op 'taskz'; valid names: api_corpus"),
    ({"tasks": {"n_taskz": 3}}, 'unexpected config entry "n_taskz"'),
    ({"tasks": {"n_tasks": "many"}}, "n_tasks"),
    ({"evaluation": {"trials_kk": 1}}, "for training_job"),
    ([1, 2], "must be a JSON object"),
])
def test_bad_overrides_are_refused_with_what_is_valid(defs, overrides, says):
    with pytest.raises(ConfigError) as info:
        validate_overrides(defs, "default", overrides)
    assert says in str(info.value)


def test_cli_refuses_before_any_run(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {"DAGSTER_HOME": str(home), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    for config, says in (('{"tasks": {"n_taskz": 1}}', "n_taskz"), ("{not json", "not valid JSON")):
        proc = subprocess.run([sys.executable, "-m", "agentscaler_dagster.cli", "materialize", "--artifacts",
                               str(tmp_path / "artifacts"), "--config", config],
                              capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 2, proc.stderr[-1500:]
        assert says in proc.stderr
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert instance.get_runs_count() == 0, "a run started although the config was wrong"
    assert not (tmp_path / "artifacts" / "materialize_summary.json").exists()


def test_concurrent_first_opens_of_a_fresh_instance_leave_it_usable(tmp_path):
    """Two materialisations started at once on a fresh home: the storage is created once, not twice."""
    script = ("import sys; from agentscaler_dagster.pipeline_cli import open_instance; "
              "i = open_instance(); print(i.get_runs_count())")
    for attempt in range(2):
        home = tmp_path / f"home{attempt}"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {"DAGSTER_HOME": str(home), "PATH": "/usr/bin:/bin"}
        procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
        outputs = [p.communicate(timeout=300) for p in procs]
        assert all(p.returncode == 0 for p in procs), [o[1][-800:] for o in outputs]
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            assert instance.get_runs_count() == 0
