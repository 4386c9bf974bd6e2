"""`agentscaler materialize`: the whole asset graph, stage by stage, on a Dagster instance.

Runs the three jobs of the code location in order (corpus and domains; one run per domain;
training and evaluation). Each run is launched as the UI launches one: created against the code location
(served by a gRPC code server this command starts) and handed to the instance's run launcher, which runs it
in its own worker process; so every run, materialisation and check is recorded in the instance at
$DAGSTER_HOME, listed under its job, re-executable from the UI, and watched by the daemon's run monitoring.
``launch="in_process"`` (``--in-process``) executes the runs in this process instead (a debugger, an
ephemeral instance).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

# the small slice the end-to-end test and `--profile smoke` use; `default` is the embedded default
PROFILES: dict[str, dict] = {
    "default": {},
    "smoke": {
        "api_corpus": {"max_files": 3},
        # three services only: let each stay one domain instead of splitting at a tenth of 45 tools
        "tool_graph_and_domains": {"max_domain_share": 0.5},
        "tasks": {"n_tasks": 4},
        "trajectories": {"trials": 1},
        "base_model": {"source": "tiny"},
        "phase1_checkpoint": {"max_steps": 2},
        "phase2_checkpoint": {"max_steps": 2},
        "evaluation": {"max_tasks": 2, "trials_k": 1, "max_turns": 4, "max_new_tokens": 16},
    },
    # benchmarks/bench_headline.py: data from both corpora, phase 1 and 2 trained for a fixed token budget, and
    # the held-out evaluation (>= 100 tasks x 4 trials x 3 checkpoints) served by vLLM, in <= 2 h on 2 cores.
    # The corpus paths are the command's (they are machine paths).
    "headline": {
        # the corpora's domains reach 40-60 tools, whose schemas alone filled the 2048-token training rows and
        # 58 % of the held-out prompts ran past them: show a tau-bench-sized 16 (the task's own + distractors)
        "tasks": {"max_prompt_tools": 16},
        # ~320 x 2048 tokens at ~240 tokens/s: ~45 min; a higher rate than the main job's, since the run sees
        # about a third of phase 1's records once
        "phase1_checkpoint": {"max_steps": 320, "learning_rate": 5e-5, "checkpoint_every": 80},
        # 100 steps (1.4 epochs of the 5 vertical domains) took its loss to 0.07 and its held-out tool calls
        # from phase 1's 75 to 47 of 348 episodes: under one epoch
        "phase2_checkpoint": {"max_steps": 60, "learning_rate": 2e-5, "checkpoint_every": 30},
        "evaluation": {"generator": "vllm", "models": ["base", "phase1", "phase2"], "max_tasks": 100,
                       "trials_k": 4, "temperature": 0.0, "max_turns": 8, "max_new_tokens": 96, "concurrency": 16},
    },
}


JOBS = ("corpus_job", "domain_job", "training_job")

# The UI lists a job's runs by job name and the hidden `.dagster/repository` tag ("<repository>@<location>"),
# which runs launched against a code location get; in-process runs (``--in-process``) set it themselves. The
# name is the location's in workspace.yaml, pyproject's [tool.dagster] and the compose deployment.
CODE_LOCATION = os.environ.get("AGENTSCALER_CODE_LOCATION", "agentscaler_dagster")


def cli_run_tags() -> dict[str, str]:
    from agentscaler_dagster.assets.automation import CLI_RUN_TAGS

    return {**CLI_RUN_TAGS, ".dagster/repository": f"__repository__@{CODE_LOCATION}"}


class ConfigError(ValueError):
    """``--config`` names something that does not exist or gives a value its field does not take."""


def config_targets(defs) -> dict[str, str]:
    """Every name ``--config`` accepts (op names, and the asset keys they materialise) -> op name."""
    targets: dict[str, str] = {}
    for assets_def in defs.resolve_asset_graph().assets_defs:
        targets[assets_def.node_def.name] = assets_def.node_def.name
        for key in assets_def.keys:
            targets.setdefault(key.to_user_string(), assets_def.node_def.name)
    return targets


def validate_overrides(defs, profile: str, overrides: dict | None) -> dict:
    """Overrides keyed by op name, checked against every job's config schema before anything runs."""
    import dagster as dg

    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
        raise ConfigError('--config must be a JSON object of {"<asset or op>": {"<field>": value}}')
    targets = config_targets(defs)
    resolved: dict[str, dict] = {}
    for name, cfg in overrides.items():
        if name not in targets:
            raise ConfigError(f"--config: unknown asset or op {name!r}; valid names: {', '.join(sorted(targets))}")
        resolved.setdefault(targets[name], {}).update(cfg)
    for job_name in JOBS:
        run_config = run_config_for(defs, profile, job_name, resolved)
        try:
            dg.validate_run_config(defs.resolve_job_def(job_name), run_config)
        except dg.DagsterInvalidConfigError as exc:
            problems = "; ".join(error.message for error in exc.errors) or str(exc)
            raise ConfigError(f"--config for {job_name}: {problems}") from None
        for node, op_config in run_config.get("ops", {}).items():
            check_values(defs, node, op_config["config"])
    return resolved


def check_values(defs, node: str, values: dict) -> None:
    """What Dagster's schema does not check (it knows types, not bounds), checked before any run starts: the
    op's Config class built from ``values`` (its pydantic bounds), and no negative integer setting, as every
    integer setting here is a count, a limit, a length or a seed (``max_files: -3`` would slice off files)."""
    import pydantic

    for field, value in values.items():
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise ConfigError(f"--config: {node}.{field} is {value}; counts, limits, lengths and seeds cannot be negative")
    op = next((a.node_def for a in defs.resolve_asset_graph().assets_defs if a.node_def.name == node), None)
    compute_fn = getattr(op, "compute_fn", None)
    if compute_fn is None or not compute_fn.has_config_arg():
        return
    config_class = compute_fn.get_config_arg().annotation
    if not (isinstance(config_class, type) and issubclass(config_class, pydantic.BaseModel)):
        return
    try:
        config_class(**values)
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{node}.{'.'.join(map(str, e['loc']))} is {e['input']!r}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"--config: {problems}") from None


def run_config_for(defs, profile: str, job_name: str, overrides: dict | None = None) -> dict:
    settings = {node: dict(cfg) for node, cfg in PROFILES[profile].items()}
    for node, cfg in (overrides or {}).items():
        settings.setdefault(node, {}).update(cfg)
    job = defs.resolve_job_def(job_name)
    ops = {node: cfg for node, cfg in settings.items() if job.graph.has_node_named(node)}
    return {"ops": {node: {"config": cfg} for node, cfg in ops.items()}} if ops else {}


def open_instance():
    """The instance at $DAGSTER_HOME, its storage created by one process at a time.

    Two runs started at once on a fresh home would both create the sqlite schemas and stamp alembic twice
    ("two alembic heads"), after which the instance no longer opens; a lock file serialises the first open.
    """
    import fcntl

    import dagster as dg

    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".agentscaler-init.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        instance = dg.DagsterInstance.get()
        instance.get_runs_count()  # forces every storage to exist before the lock is released
        reap_dead_runs(instance)
        fcntl.flock(lock, fcntl.LOCK_UN)
    return instance


def _gone_worker(instance, run) -> int | None:
    """The pid of ``run``'s process when that process is gone (None: alive, unknown, or this process)."""
    import dagster as dg

    starts = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_START)
    pid = starts[-1].dagster_event.pid if starts and starts[-1].dagster_event else None
    if pid is None or pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
        return None  # still running
    except ProcessLookupError:
        return pid
    except PermissionError:
        return None  # another user's live process


def _fail_dead_run(instance, run, pid: int) -> None:
    instance.report_run_failed(run, message=f"process {pid} of this run is gone; failed by agentscaler")
    instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)


def reap_dead_runs(instance, log=print) -> list[str]:
    """Fail the runs this machine started whose process is gone, and free their pool slots.

    A run killed mid-step (a kill -9, an out-of-memory kill) stays STARTED and keeps its `gpu` pool slot,
    so every later run waits on that pool forever. The daemon's run monitoring covers runs when it is on;
    without it nobody watches them, so the CLI checks before it starts.
    """
    import dagster as dg

    reaped = []
    for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED,
                                                         dg.DagsterRunStatus.STARTING])):
        pid = _gone_worker(instance, run)
        if pid is None:
            continue
        _fail_dead_run(instance, run, pid)
        reaped.append(run.run_id)
        log(f"run {run.run_id} ({run.job_name}) had died with its process {pid}: marked failed, pool slots freed")
    return reaped


class RunOutcome:
    """What the CLI needs of a finished run, whichever way it ran."""

    def __init__(self, run_id: str, success: bool):
        self.run_id, self.success = run_id, success


class InProcessRuns:
    """Runs executed in this process (``execute_in_process``), tagged with the code location's name."""

    def __init__(self, defs, instance):
        self.defs, self.instance = defs, instance

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def run(self, job_name: str, run_config: dict, *, partition_key: str | None = None,
            asset_selection: list | None = None, on_log=None) -> RunOutcome:
        # ``on_log`` is not called: the console logger prints what the run logs at its level, in this process
        outcome = self.defs.resolve_job_def(job_name).execute_in_process(
            run_config=run_config, instance=self.instance, partition_key=partition_key,
            asset_selection=asset_selection, raise_on_error=False, tags=cli_run_tags())
        return RunOutcome(outcome.run_id, outcome.success)


class LaunchedRuns:
    """Runs created against the code location and launched by the instance's run launcher, as the UI does.

    Entering starts the code location's gRPC code server (``dagster api grpc`` on
    ``agentscaler_dagster.definitions``, the name ``CODE_LOCATION``) and fails with its load error if the
    location does not load. ``run`` creates the run from the location's job snapshot and execution plan,
    hands it to ``instance.launch_run`` (the launcher, not the queue: a queued run would wait for a daemon
    that may not be running) and waits for it. Interrupting the wait terminates the run through the launcher.
    """

    MODULE = "agentscaler_dagster.definitions"

    def __init__(self, instance, *, artifacts_root: str | None = None, poll_seconds: float = 0.25):
        self.instance, self.poll_seconds = instance, poll_seconds
        self.artifacts_root = artifacts_root
        self._context = None

    def __enter__(self):
        import dagster as dg
        from dagster._core.workspace.context import WorkspaceProcessContext
        from dagster._core.workspace.load_target import ModuleTarget

        if self.artifacts_root:
            # the code server reads its default artifact root at import; the runs also get it as resource config
            os.environ["AGENTSCALER_ARTIFACTS"] = str(self.artifacts_root)
        target = ModuleTarget(module_name=self.MODULE, attribute="defs", working_directory=os.getcwd(),
                              location_name=CODE_LOCATION)
        self._context = WorkspaceProcessContext(self.instance, target, version=dg.__version__,
                                                code_server_log_level="WARNING")
        self._context.__enter__()
        workspace = self._context.create_request_context()
        error = workspace.get_code_location_error(CODE_LOCATION)
        if error is not None:
            self.__exit__(None, None, None)
            raise RuntimeError(f"the code location {CODE_LOCATION} ({self.MODULE}) did not load: {error.to_string()}")
        return self

    def __exit__(self, *exc) -> None:
        if self._context is not None:
            context, self._context = self._context, None
            context.__exit__(None, None, None)

    def create(self, job_name: str, run_config: dict, *, partition_key: str | None = None,
               asset_selection: list | None = None):
        from dagster._core.definitions.selector import JobSubsetSelector

        workspace = self._context.create_request_context()
        location = workspace.get_code_location(CODE_LOCATION)
        [repository] = location.get_repositories().values()
        selector = JobSubsetSelector(location_name=CODE_LOCATION, repository_name=repository.name,
                                     job_name=job_name, op_selection=None, asset_selection=asset_selection)
        remote_job = location.get_job(selector)
        plan = location.get_execution_plan(remote_job, run_config, step_keys_to_execute=None, known_state=None,
                                           instance=self.instance).execution_plan_snapshot
        tags = {**remote_job.tags, **cli_run_tags()}
        if partition_key is not None:
            tags["dagster/partition"] = partition_key
        return self.instance.create_run(
            job_name=job_name, run_id=None, run_config=run_config, resolved_op_selection=None,
            step_keys_to_execute=plan.step_keys_to_execute, op_selection=None, status=None, root_run_id=None,
            parent_run_id=None, tags=tags, job_snapshot=remote_job.job_snapshot, execution_plan_snapshot=plan,
            parent_job_snapshot=remote_job.parent_job_snapshot, remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
            asset_selection=frozenset(asset_selection) if asset_selection else None, asset_check_selection=None,
            asset_graph=repository.asset_graph,
        )

    def run(self, job_name: str, run_config: dict, *, partition_key: str | None = None,
            asset_selection: list | None = None, on_log=None) -> RunOutcome:
        """Launch the run and wait for it; ``on_log(step_key, message)`` gets each log message the run writes,
        as it is written (the run's worker writes them to the instance's event log)."""
        import dagster as dg

        if self.artifacts_root:
            run_config = {**run_config, "resources": {**run_config.get("resources", {}),
                                                      "artifacts": {"config": {"root": str(self.artifacts_root)}}}}
        created = self.create(job_name, run_config, partition_key=partition_key, asset_selection=asset_selection)
        self.instance.launch_run(created.run_id, self._context.create_request_context())
        last_look = time.monotonic()
        cursor = None

        def forward_logs():
            nonlocal cursor
            while on_log is not None:
                page = self.instance.get_records_for_run(created.run_id, cursor=cursor, limit=500)
                cursor = page.cursor
                for record in page.records:
                    entry = record.event_log_entry
                    if entry.dagster_event is None and entry.user_message:
                        on_log(entry.step_key, entry.user_message)
                if not page.has_more:
                    return

        try:
            while True:
                run = self.instance.get_run_by_id(created.run_id)
                forward_logs()
                if run.is_finished:
                    forward_logs()
                    return RunOutcome(run.run_id, run.status == dg.DagsterRunStatus.SUCCESS)
                if time.monotonic() - last_look > 5:
                    # a worker killed from outside (OOM) never reports: do not wait on it forever
                    last_look = time.monotonic()
                    pid = _gone_worker(self.instance, run) if run.status == dg.DagsterRunStatus.STARTED else None
                    if pid is not None and not self.instance.get_run_by_id(run.run_id).is_finished:
                        _fail_dead_run(self.instance, run, pid)
                        return RunOutcome(run.run_id, False)
                time.sleep(self.poll_seconds)
        except BaseException:
            self.instance.run_launcher.terminate(created.run_id)
            raise


LAUNCH_MODES = ("launcher", "in_process")

# the run's own progress messages the console repeats (the training loop's steps, the evaluation's episodes);
# every other message is in the log file only
PROGRESS_LINE = re.compile(r"^(phase \d+ step \d+/\d+|evaluation \d+/\d+ episodes)\b")


def open_runs(launch: str, defs, instance, artifacts_root: str | None):
    """The way runs are started: ``LaunchedRuns`` against the code location, or ``InProcessRuns`` on ``defs``."""
    if launch == "launcher":
        return LaunchedRuns(instance, artifacts_root=artifacts_root)
    if launch == "in_process":
        return InProcessRuns(defs, instance)
    raise ConfigError(f"unknown launch mode {launch!r}; valid: {', '.join(LAUNCH_MODES)}")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _write_run_log(instance, run_id: str, label: str, path: Path) -> None:
    """Every event of a run, as Dagster's console would have printed it at DEBUG level."""
    import datetime
    import logging

    with path.open("a", encoding="utf-8") as out:
        out.write(f"===== {label} (run {run_id})\n")
        for entry in instance.all_logs(run_id):
            stamp = datetime.datetime.fromtimestamp(entry.timestamp, datetime.timezone.utc).strftime("%H:%M:%S")
            kind = entry.dagster_event.event_type_value if entry.dagster_event else "LOG"
            step = f" {entry.step_key}" if entry.step_key else ""
            level = logging.getLevelName(entry.level) if isinstance(entry.level, int) else str(entry.level)
            out.write(f"{stamp} {level:<7} {kind}{step}: {entry.user_message}\n")


def materialize_all(
    *, instance=None, artifacts_root: str | None = None, profile: str = "default", overrides: dict | None = None,
    log=print, log_file: str | Path | None = None, console_level: str = "WARNING", jobs: tuple[str, ...] = JOBS,
    launch: str = "launcher",
) -> dict:
    """Materialise every asset of ``jobs`` (by default all three, in order); returns a summary with the run ids, seconds and any failed domains.

    ``launch``: ``"launcher"`` (runs launched against the code location by the instance's run launcher, each
    in its own worker process) or ``"in_process"`` (``execute_in_process`` here). The console shows one
    progress line per run (done/total, rate, ETA) and Dagster's messages at ``console_level`` or above; every
    event of every run goes to ``log_file`` when one is given.
    """
    import warnings

    import dagster as dg

    from agentscaler_dagster.assets import domain_partitions
    from agentscaler_dagster.definitions import build_defs

    # Dagster's own API-stability notes are for the code location's authors, not for this console
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    defs = build_defs(artifacts_root)
    # every job's config is checked before the first run starts: a typo must not cost a corpus run
    unknown = [job for job in jobs if job not in JOBS]
    if unknown:
        raise ConfigError(f"unknown job(s) {', '.join(unknown)}; valid: {', '.join(JOBS)}")
    if launch not in LAUNCH_MODES:
        raise ConfigError(f"unknown launch mode {launch!r}; valid: {', '.join(LAUNCH_MODES)}")
    overrides = validate_overrides(defs, profile, overrides)
    instance = instance or open_instance()
    summary: dict = {"runs": {}, "failed_domains": {}, "seconds": {}, "launch": launch}
    log_path = Path(log_file) if log_file else None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("")

    runs = open_runs(launch, defs, instance, artifacts_root)

    def progress(job_name: str):
        def on_log(step_key: str | None, message: str) -> None:
            if PROGRESS_LINE.match(message):  # a training step, an evaluation episode: done/total
                log(f"[{job_name}] {message}")
        return on_log

    def run(job_name: str, partition_key: str | None = None):
        started = time.monotonic()
        run_config = run_config_for(defs, profile, job_name, overrides)
        run_config["loggers"] = {"console": {"config": {"log_level": console_level}}}
        outcome = runs.run(job_name, run_config, partition_key=partition_key,
                           on_log=progress(job_name) if job_name == "training_job" else None)
        label = job_name if partition_key is None else f"{job_name}[{partition_key}]"
        summary["runs"][label] = outcome.run_id
        summary["seconds"][label] = round(time.monotonic() - started, 1)
        if log_path is not None:
            _write_run_log(instance, outcome.run_id, label, log_path)
        return outcome

    def whole_job(job_name: str, what: str) -> None:
        """One run of an unpartitioned job; a failure stops the command (later jobs read its output)."""
        log(f"[{job_name}] {what} ...")
        outcome = run(job_name)
        log(f"[{job_name}] {'ok' if outcome.success else 'FAILED'} in {_clock(summary['seconds'][job_name])} "
            f"(run {outcome.run_id})")
        if not outcome.success:
            raise RuntimeError(f"{job_name} failed (run {outcome.run_id}); see {log_path or 'the run in the Dagster UI'}")

    with runs:
        if "corpus_job" in jobs:
            whole_job("corpus_job", "ingest, tool graph, domains")
        domains = instance.get_dynamic_partitions(domain_partitions.name) if "domain_job" in jobs else []
        if "domain_job" in jobs:
            log(f"[domain_job] {len(domains)} domains")
        started = time.monotonic()
        for index, domain_id in enumerate(domains, 1):
            ok = run("domain_job", domain_id).success
            if not ok:
                summary["failed_domains"][domain_id] = summary["runs"][f"domain_job[{domain_id}]"]
            elapsed = time.monotonic() - started
            rate = index / elapsed if elapsed > 0 else 0.0
            eta = (len(domains) - index) / rate if rate else 0.0
            log(f"[domain_job] {index}/{len(domains)} done, {len(summary['failed_domains'])} failed, "
                f"{rate * 60:.1f}/min, ETA {_clock(eta)}  {domain_id}{'' if ok else '  FAILED'}")
        if "domain_job" in jobs:
            summary["seconds"]["domain_job"] = round(time.monotonic() - started, 1)
        if "training_job" in jobs:
            whole_job("training_job", "SFT datasets, base model, phase 1, phase 2, evaluation")
    return summary


def stale_status_resolver(instance, asset_graph):
    """Dagster's own staleness (what the UI shows as "Stale"/"Never materialized"), for this instance now."""
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
    from dagster._core.definitions.data_version import CachingStaleStatusResolver
    from dagster._time import get_current_datetime

    view = AssetGraphView(temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
                          instance=instance, asset_graph=asset_graph)
    return CachingStaleStatusResolver(instance, asset_graph, view)


def rebuild_changed(
    *, instance=None, defs=None, artifacts_root: str | None = None, profile: str = "default",
    overrides: dict | None = None, log=print, max_rounds: int = 8, launch: str = "launcher",
) -> dict:
    """Materialise only what Dagster reports stale or missing, stage by stage, until nothing is.

    With ``launch="launcher"`` the runs are launched against the code location, which loads the code as it
    is on disk; ``defs`` given by the caller (an edited code location in a test) need ``"in_process"``.

    An asset is stale when its code version changed or an upstream asset has a newer data version than
    the one it was built from. Rebuilding an asset whose output comes out byte-identical leaves its
    downstream fresh (data versions are content hashes), so a no-op change rebuilds nothing downstream.
    Returns ``{"rebuilt": {"asset[partition]": run_id}, "rounds": n}``.
    """
    from agentscaler_dagster.definitions import build_defs

    if launch == "launcher" and defs is not None:
        raise ConfigError("rebuild_changed: defs given by the caller run only with launch='in_process'")
    defs = defs or build_defs(artifacts_root)
    overrides = validate_overrides(defs, profile, overrides)
    instance = instance or open_instance()
    asset_graph = defs.resolve_asset_graph()
    with open_runs(launch, defs, instance, artifacts_root) as runs:
        rebuilt, rounds = _rebuild_rounds(runs, defs, instance, asset_graph, profile, overrides, log, max_rounds)
    return {"rebuilt": rebuilt, "rounds": rounds}


def _rebuild_rounds(runs, defs, instance, asset_graph, profile, overrides, log, max_rounds) -> tuple[dict, int]:
    from dagster._core.definitions.data_version import StaleStatus

    from agentscaler_dagster.assets import domain_partitions

    rebuilt: dict[str, str] = {}
    rounds = 0
    for job_name in JOBS:
        job = defs.resolve_job_def(job_name)
        keys = sorted(job.asset_layer.executable_asset_keys, key=lambda k: k.to_user_string())
        partitioned = any(asset_graph.get(k).is_partitioned for k in keys)
        for _ in range(max_rounds):
            resolver = stale_status_resolver(instance, asset_graph)
            partitions = instance.get_dynamic_partitions(domain_partitions.name) if partitioned else [None]
            todo = {p: [k for k in keys if resolver.get_status(k, p) in (StaleStatus.STALE, StaleStatus.MISSING)]
                    for p in partitions}
            todo = {p: ks for p, ks in todo.items() if ks}
            if not todo:
                break
            rounds += 1
            for partition, stale in todo.items():
                run_config = run_config_for(defs, profile, job_name, overrides)
                run_config["loggers"] = {"console": {"config": {"log_level": "WARNING"}}}
                outcome = runs.run(job_name, run_config, partition_key=partition, asset_selection=stale)
                names = ", ".join(k.to_user_string() for k in stale)
                where = f"[{partition}]" if partition else ""
                log(f"[rebuild] {job_name}{where}: {names}: {'ok' if outcome.success else 'FAILED'}")
                for key in stale:
                    rebuilt[f"{key.to_user_string()}{where}"] = outcome.run_id
                if not outcome.success:
                    raise RuntimeError(f"rebuilding {names}{where} failed (run {outcome.run_id})")
    return rebuilt, rounds


def summary_table(summary: dict) -> str:
    domain_runs = [k for k in summary["runs"] if k.startswith("domain_job[")]
    rows = [("corpus_job", "1", "1" if "corpus_job" in summary["runs"] else "0", summary["seconds"].get("corpus_job")),
            ("domain_job", str(len(domain_runs)), str(len(domain_runs) - len(summary["failed_domains"])),
             summary["seconds"].get("domain_job")),
            ("training_job", "1", "1" if "training_job" in summary["runs"] else "0",
             summary["seconds"].get("training_job"))]
    lines = [f"{'job':<14}{'runs':>6}{'ok':>6}{'time':>9}"]
    lines += [f"{job:<14}{runs:>6}{ok:>6}{_clock(seconds or 0):>9}" for job, runs, ok, seconds in rows]
    return "\n".join(lines)


def _materialize(args: argparse.Namespace) -> int:
    if not os.environ.get("DAGSTER_HOME"):
        # the UI must find these runs later: a persistent instance, never an ephemeral one
        home = Path(".dagster_home").resolve()
        home.mkdir(exist_ok=True)
        if not (home / "dagster.yaml").exists():
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        os.environ["DAGSTER_HOME"] = str(home)
        print(f"DAGSTER_HOME was not set; using {home}")
    root = Path(args.artifacts or os.environ.get("AGENTSCALER_ARTIFACTS", "artifacts")).resolve()
    try:
        overrides = json.loads(args.config) if args.config else None
    except json.JSONDecodeError as exc:
        print(f"agentscaler materialize: --config is not valid JSON: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    log_file = root / "materialize.log"
    print(f"full Dagster log: {log_file}")
    try:
        summary = materialize_all(artifacts_root=str(root), profile=args.profile, overrides=overrides,
                                  log_file=log_file, console_level="DEBUG" if args.verbose else "WARNING",
                                  log=lambda line: print(line, flush=True),
                                  launch="in_process" if args.in_process else "launcher")
    except ConfigError as exc:
        print(f"agentscaler materialize: {exc}", file=sys.stderr)
        return 2
    summary["total_seconds"] = round(time.monotonic() - started, 1)
    (root / "materialize_summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    print(summary_table(summary))
    print(f"done in {_clock(summary['total_seconds'])}; artifacts under {root}")
    print(f"evaluation report: {root / 'evaluation' / 'eval_report.json'}")
    print(f"open the UI: DAGSTER_HOME={os.environ['DAGSTER_HOME']} dagster dev")
    return 1 if summary["failed_domains"] else 0


def _rebuild(args: argparse.Namespace) -> int:
    if not os.environ.get("DAGSTER_HOME"):
        print("agentscaler rebuild: set DAGSTER_HOME to the instance that holds the last materialisation",
              file=sys.stderr)
        return 2
    root = Path(args.artifacts or os.environ.get("AGENTSCALER_ARTIFACTS", "artifacts")).resolve()
    try:
        overrides = json.loads(args.config) if args.config else None
        result = rebuild_changed(artifacts_root=str(root), profile=args.profile, overrides=overrides,
                                 log=lambda line: print(line, flush=True),
                                 launch="in_process" if args.in_process else "launcher")
    except (json.JSONDecodeError, ConfigError) as exc:
        print(f"agentscaler rebuild: {exc}", file=sys.stderr)
        return 2
    print(f"rebuilt {len(result['rebuilt'])} asset partitions in {result['rounds']} rounds"
          + ("" if result["rebuilt"] else ": everything was fresh"))
    return 0


IN_PROCESS_HELP = ("execute the runs in this process instead of launching each through the instance's run "
                   "launcher against the code location (for a debugger; the UI cannot re-execute them as launched)")


def register(subparsers) -> None:
    parser = subparsers.add_parser("materialize", help="materialise the whole asset graph on a Dagster instance ($DAGSTER_HOME)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="default", help="default: the embedded default; smoke: a small slice; headline: the settings of benchmarks/bench_headline.py")
    parser.add_argument("--artifacts", help="artifact root (default: $AGENTSCALER_ARTIFACTS or ./artifacts)")
    parser.add_argument("--verbose", action="store_true", help="print every Dagster event (DEBUG) to the console too")
    parser.add_argument("--config", help='JSON of per-asset config overrides, e.g. \'{"tasks": {"n_tasks": 20}}\'')
    parser.add_argument("--in-process", action="store_true", help=IN_PROCESS_HELP)
    parser.set_defaults(func=_materialize)

    rebuild = subparsers.add_parser(
        "rebuild", help="materialise only the assets Dagster reports stale or missing (code or upstream changed)")
    rebuild.add_argument("--changed", action="store_true", required=True,
                         help="rebuild what changed (the only mode; named so CI scripts read well)")
    rebuild.add_argument("--profile", choices=sorted(PROFILES), default="default")
    rebuild.add_argument("--artifacts", help="artifact root (default: $AGENTSCALER_ARTIFACTS or ./artifacts)")
    rebuild.add_argument("--config", help="JSON of per-asset config overrides, as for materialize")
    rebuild.add_argument("--in-process", action="store_true", help=IN_PROCESS_HELP)
    rebuild.set_defaults(func=_rebuild)
