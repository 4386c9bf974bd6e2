"""`agentscaler materialize`: the whole asset graph, stage by stage, on a Dagster instance.

Runs the three jobs of the code location in order (corpus and domains; one run per domain;
training and evaluation) with in-process execution, so every run, materialisation and check
is recorded in the instance at $DAGSTER_HOME and shows in `dagster dev`.
"""

from __future__ import annotations

import argparse
import json
import os
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
        # ~240 x ~1,800 tokens at ~300 tokens/s: ~25 min; a higher rate than the main job's, since the run
        # sees ~12 % of phase 1's records once
        "phase1_checkpoint": {"max_steps": 240, "learning_rate": 5e-5, "checkpoint_every": 60},
        "phase2_checkpoint": {"max_steps": 100, "learning_rate": 2e-5, "checkpoint_every": 50},
        "evaluation": {"generator": "vllm", "models": ["base", "phase1", "phase2"], "max_tasks": 100,
                       "trials_k": 4, "temperature": 0.0, "max_turns": 8, "max_new_tokens": 96, "concurrency": 16},
    },
}


JOBS = ("corpus_job", "domain_job", "training_job")

# The UI lists a job's runs by job name and the hidden `.dagster/repository` tag ("<repository>@<location>"),
# which only runs launched against a code location get. The CLI runs in this process, so it sets the tag
# itself: the name of the location in workspace.yaml, pyproject's [tool.dagster] and the compose deployment.
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


def reap_dead_runs(instance, log=print) -> list[str]:
    """Fail the runs this machine started whose process is gone, and free their pool slots.

    A run killed mid-step (a kill -9, an out-of-memory kill) stays STARTED and keeps its `gpu` pool slot,
    so every later run waits on that pool forever. The daemon's run monitoring covers runs it launched;
    in-process runs of this CLI have nobody to watch them, so the CLI checks before it starts.
    """
    import dagster as dg

    reaped = []
    for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED,
                                                         dg.DagsterRunStatus.STARTING])):
        starts = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_START)
        pid = starts[-1].dagster_event.pid if starts and starts[-1].dagster_event else None
        if pid is None or pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # another user's live process
        instance.report_run_failed(run, message=f"process {pid} of this run is gone; failed by agentscaler")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append(run.run_id)
        log(f"run {run.run_id} ({run.job_name}) had died with its process {pid}: marked failed, pool slots freed")
    return reaped


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
) -> dict:
    """Materialise every asset of ``jobs`` (by default all three, in order); returns a summary with the run ids, seconds and any failed domains.

    The console shows one progress line per run (done/total, rate, ETA) and Dagster's messages at
    ``console_level`` or above; every event of every run goes to ``log_file`` when one is given.
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
    overrides = validate_overrides(defs, profile, overrides)
    instance = instance or open_instance()
    summary: dict = {"runs": {}, "failed_domains": {}, "seconds": {}}
    log_path = Path(log_file) if log_file else None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("")

    def run(job_name: str, partition_key: str | None = None):
        started = time.monotonic()
        job = defs.resolve_job_def(job_name)
        run_config = run_config_for(defs, profile, job_name, overrides)
        run_config["loggers"] = {"console": {"config": {"log_level": console_level}}}
        outcome = job.execute_in_process(
            run_config=run_config, instance=instance, partition_key=partition_key, raise_on_error=False,
            tags=cli_run_tags(),
        )
        label = job_name if partition_key is None else f"{job_name}[{partition_key}]"
        summary["runs"][label] = outcome.run_id
        summary["seconds"][label] = round(time.monotonic() - started, 1)
        if log_path is not None:
            _write_run_log(instance, outcome.run_id, label, log_path)
        return outcome

    def stage_done(job_name: str, outcome) -> None:
        seconds = summary["seconds"][job_name]
        log(f"[{job_name}] {'ok' if outcome.success else 'FAILED'} in {_clock(seconds)} (run {outcome.run_id})")

    if "corpus_job" in jobs:
        log("[corpus_job] ingest, tool graph, domains ...")
        outcome = run("corpus_job")
        stage_done("corpus_job", outcome)
        if not outcome.success:
            raise RuntimeError(f"corpus_job failed (run {outcome.run_id}); see {log_path or 'the run in the Dagster UI'}")
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
        log("[training_job] SFT datasets, base model, phase 1, phase 2, evaluation ...")
        outcome = run("training_job")
        stage_done("training_job", outcome)
        if not outcome.success:
            raise RuntimeError(f"training_job failed (run {outcome.run_id}); see {log_path or 'the run in the Dagster UI'}")
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
    overrides: dict | None = None, log=print, max_rounds: int = 8,
) -> dict:
    """Materialise only what Dagster reports stale or missing, stage by stage, until nothing is.

    An asset is stale when its code version changed or an upstream asset has a newer data version than
    the one it was built from. Rebuilding an asset whose output comes out byte-identical leaves its
    downstream fresh (data versions are content hashes), so a no-op change rebuilds nothing downstream.
    Returns ``{"rebuilt": {"asset[partition]": run_id}, "rounds": n}``.
    """
    from dagster._core.definitions.data_version import StaleStatus

    from agentscaler_dagster.assets import domain_partitions
    from agentscaler_dagster.definitions import build_defs

    defs = defs or build_defs(artifacts_root)
    overrides = validate_overrides(defs, profile, overrides)
    instance = instance or open_instance()
    asset_graph = defs.resolve_asset_graph()
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
                outcome = job.execute_in_process(run_config=run_config, instance=instance, partition_key=partition,
                                                 asset_selection=stale, raise_on_error=False, tags=cli_run_tags())
                names = ", ".join(k.to_user_string() for k in stale)
                where = f"[{partition}]" if partition else ""
                log(f"[rebuild] {job_name}{where}: {names}: {'ok' if outcome.success else 'FAILED'}")
                for key in stale:
                    rebuilt[f"{key.to_user_string()}{where}"] = outcome.run_id
                if not outcome.success:
                    raise RuntimeError(f"rebuilding {names}{where} failed (run {outcome.run_id})")
    return {"rebuilt": rebuilt, "rounds": rounds}


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
                                  log=lambda line: print(line, flush=True))
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
                                 log=lambda line: print(line, flush=True))
    except (json.JSONDecodeError, ConfigError) as exc:
        print(f"agentscaler rebuild: {exc}", file=sys.stderr)
        return 2
    print(f"rebuilt {len(result['rebuilt'])} asset partitions in {result['rounds']} rounds"
          + ("" if result["rebuilt"] else ": everything was fresh"))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("materialize", help="materialise the whole asset graph on a Dagster instance ($DAGSTER_HOME)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="default", help="default: the embedded default; smoke: a small slice; headline: the settings of benchmarks/bench_headline.py")
    parser.add_argument("--artifacts", help="artifact root (default: $AGENTSCALER_ARTIFACTS or ./artifacts)")
    parser.add_argument("--verbose", action="store_true", help="print every Dagster event (DEBUG) to the console too")
    parser.add_argument("--config", help='JSON of per-asset config overrides, e.g. \'{"tasks": {"n_tasks": 20}}\'')
    parser.set_defaults(func=_materialize)

    rebuild = subparsers.add_parser(
        "rebuild", help="materialise only the assets Dagster reports stale or missing (code or upstream changed)")
    rebuild.add_argument("--changed", action="store_true", required=True,
                         help="rebuild what changed (the only mode; named so CI scripts read well)")
    rebuild.add_argument("--profile", choices=sorted(PROFILES), default="default")
    rebuild.add_argument("--artifacts", help="artifact root (default: $AGENTSCALER_ARTIFACTS or ./artifacts)")
    rebuild.add_argument("--config", help="JSON of per-asset config overrides, as for materialize")
    rebuild.set_defaults(func=_rebuild)
