"""`agentscaler materialize --config`: mistakes (unknown names, wrong types, values out of bounds) are refused
before any run starts.

Real parts: the code location's definitions, Dagster's own config validation, the CLI in a subprocess on a
fresh instance (which must hold no run afterwards).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from agentscaler_dagster.definitions import build_defs
from agentscaler_dagster.pipeline_cli import PROFILES, ConfigError, LaunchedRuns, materialize_all, validate_overrides


@pytest.fixture(scope="module")
def defs(tmp_path_factory):
    return build_defs(str(tmp_path_factory.mktemp("artifacts")))


def test_asset_names_map_to_their_ops(defs):
    resolved = validate_overrides(defs, "default", {"domains": {"max_domain_share": 0.2}, "tasks": {"n_tasks": 3}})
    assert resolved == {"tool_graph_and_domains": {"max_domain_share": 0.2}, "tasks": {"n_tasks": 3}}


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_is_valid_config_for_every_job(defs, profile):
    # a profile is only read when its run starts; a stale field name must fail here, not an hour into a run
    validate_overrides(defs, profile, {})


def test_unknown_jobs_are_refused_before_any_run(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    with pytest.raises(ConfigError, match="unknown job.s. domain_jobs; valid: corpus_job, domain_job, training_job"):
        materialize_all(artifacts_root=str(tmp_path / "artifacts"), jobs=("domain_jobs",), log=lambda line: None)
    assert not (tmp_path / "artifacts").exists() and not (tmp_path / "home").exists()


@pytest.mark.parametrize("overrides, says", [
    ({"taskz": {"n_tasks": 3}}, "unknown asset or op 'taskz'; valid names: api_corpus"),
    ({"tasks": {"n_taskz": 3}}, 'unexpected config entry "n_taskz"'),
    ({"tasks": {"n_tasks": "many"}}, "n_tasks"),
    ({"evaluation": {"trials_kk": 1}}, "for training_job"),
    ([1, 2], "must be a JSON object"),
    # values the schema's types allow but the settings do not: refused by name, not at step time
    ({"api_corpus": {"max_files": -3}}, "api_corpus.max_files is -3; counts, limits, lengths and seeds cannot be negative"),
    ({"tasks": {"n_tasks": -1}}, "tasks.n_tasks is -1"),
    ({"trajectories": {"seed": -5}}, "trajectories.seed is -5"),
    ({"api_corpus": {"max_files": 0}}, "api_corpus.max_files is 0: Input should be greater than or equal to 1"),
    ({"domains": {"max_domain_share": 1.5}}, "tool_graph_and_domains.max_domain_share is 1.5"),
    ({"environment": {"min_pass_rate": 2.0}}, "environment.min_pass_rate is 2.0"),
    ({"phase2_checkpoint": {"learning_rate": 0.0}}, "phase2_checkpoint.learning_rate is 0.0: Input should be greater than 0"),
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
    for config, says in (('{"tasks": {"n_taskz": 1}}', "n_taskz"), ("{not json", "not valid JSON"),
                         ('{"api_corpus": {"max_files": -3}}', "api_corpus.max_files is -3")):
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


POOL_JOB = '''
import sys, time
import dagster as dg

@dg.asset(pool="gpu")
def hold_the_gpu():
    time.sleep(600)

@dg.asset(pool="gpu")
def needs_the_gpu():
    return 1

if __name__ == "__main__":
    asset = hold_the_gpu if sys.argv[1] == "hold" else needs_the_gpu
    with dg.DagsterInstance.get() as instance:
        assert dg.materialize([asset], instance=instance).success
'''


def test_a_killed_run_frees_its_pool_slot_for_the_next(tmp_path):
    """A run killed while it holds the `gpu` pool slot must not block every later run on that pool."""
    import os
    import signal
    import time

    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((Path(__file__).resolve().parents[1] / "dagster.yaml").read_text())
    script = tmp_path / "pool_job.py"
    script.write_text(POOL_JOB)
    env = {"DAGSTER_HOME": str(home), "PATH": "/usr/bin:/bin"}
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        instance.get_runs_count()  # create the storage first: opening it twice at once is its own bug
    holder = subprocess.Popen([sys.executable, str(script), "hold"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        deadline = time.monotonic() + 180
        while not instance.event_log_storage.get_concurrency_info("gpu").claimed_slots:
            assert time.monotonic() < deadline and holder.poll() is None, "the holder never took the gpu slot"
            time.sleep(0.5)
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
        [dead] = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    opener = ("from agentscaler_dagster.pipeline_cli import open_instance; open_instance()")
    subprocess.run([sys.executable, "-c", opener], env=env, check=True, timeout=300)
    started = time.monotonic()
    subprocess.run([sys.executable, str(script), "next"], env=env, check=True, timeout=180)
    assert time.monotonic() - started < 180
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE


def test_the_instance_fails_a_submitted_run_with_a_bad_value_before_it_is_queued(tmp_path):
    """What the launchpad, a backfill or a sensor submits goes through the instance's coordinator, which applies
    the CLI's value checks: a bad value fails the run at once with the field named, a good run is queued."""
    from agentscaler_dagster.coordinator import CheckedRunCoordinator

    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((Path(__file__).resolve().parents[1] / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert isinstance(instance.run_coordinator, CheckedRunCoordinator)
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 4  # the queue's limits hold
        # runs created against the code location (a gRPC code server), as the webserver creates them
        with LaunchedRuns(instance) as runs:
            bad = runs.create("corpus_job", {"ops": {"api_corpus": {"config": {"max_files": -3}}}})
            good = runs.create("corpus_job", {"ops": {"api_corpus": {"config": {"max_files": 3}}}})
            workspace = runs._context.create_request_context()
            assert instance.submit_run(bad.run_id, workspace).status == dg.DagsterRunStatus.FAILURE
            assert instance.submit_run(good.run_id, workspace).status == dg.DagsterRunStatus.QUEUED
        [failure] = instance.all_logs(bad.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert "refused before it was queued: api_corpus.max_files is -3" in failure.message
        assert not instance.all_logs(bad.run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED)
