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
}


JOBS = ("corpus_job", "domain_job", "training_job")


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
        try:
            dg.validate_run_config(defs.resolve_job_def(job_name), run_config_for(defs, profile, job_name, resolved))
        except dg.DagsterInvalidConfigError as exc:
            problems = "; ".join(error.message for error in exc.errors) or str(exc)
            raise ConfigError(f"--config for {job_name}: {problems}") from None
    return resolved


def run_config_for(defs, profile: str, job_name: str, overrides: dict | None = None) -> dict:
    settings = {node: dict(cfg) for node, cfg in PROFILES[profile].items()}
    for node, cfg in (overrides or {}).items():
        settings.setdefault(node, {}).update(cfg)
    job = defs.resolve_job_def(job_name)
    ops = {node: cfg for node, cfg in settings.items() if job.graph.has_node_named(node)}
    return {"ops": {node: {"config": cfg} for node, cfg in ops.items()}} if ops else {}


def materialize_all(
    *, instance=None, artifacts_root: str | None = None, profile: str = "default", overrides: dict | None = None, log=print
) -> dict:
    """Materialise every asset; returns a summary with the run ids and any failed domains."""
    import dagster as dg

    from agentscaler_dagster.assets import domain_partitions
    from agentscaler_dagster.definitions import build_defs

    defs = build_defs(artifacts_root)
    # every job's config is checked before the first run starts: a typo must not cost a corpus run
    overrides = validate_overrides(defs, profile, overrides)
    instance = instance or dg.DagsterInstance.get()
    summary: dict = {"runs": {}, "failed_domains": {}, "seconds": {}}

    def run(job_name: str, partition_key: str | None = None):
        started = time.monotonic()
        job = defs.resolve_job_def(job_name)
        outcome = job.execute_in_process(
            run_config=run_config_for(defs, profile, job_name, overrides),
            instance=instance,
            partition_key=partition_key,
            raise_on_error=False,
        )
        label = job_name if partition_key is None else f"{job_name}[{partition_key}]"
        summary["runs"][label] = outcome.run_id
        summary["seconds"][label] = round(time.monotonic() - started, 1)
        log(f"{label}: {'ok' if outcome.success else 'FAILED'} in {summary['seconds'][label]} s (run {outcome.run_id})")
        return outcome

    if not run("corpus_job").success:
        raise RuntimeError("corpus_job failed; see the run's logs in the Dagster UI")
    domains = instance.get_dynamic_partitions(domain_partitions.name)
    log(f"{len(domains)} domains: {', '.join(domains)}")
    for index, domain_id in enumerate(domains, 1):
        log(f"domain {index}/{len(domains)}: {domain_id}")
        if not run("domain_job", domain_id).success:
            summary["failed_domains"][domain_id] = summary["runs"][f"domain_job[{domain_id}]"]
    if not run("training_job").success:
        raise RuntimeError("training_job failed; see the run's logs in the Dagster UI")
    return summary


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
    try:
        summary = materialize_all(artifacts_root=str(root), profile=args.profile, overrides=overrides)
    except ConfigError as exc:
        print(f"agentscaler materialize: {exc}", file=sys.stderr)
        return 2
    summary["total_seconds"] = round(time.monotonic() - started, 1)
    (root / "materialize_summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    print(f"done in {summary['total_seconds']} s; artifacts under {root}")
    print(f"evaluation report: {root / 'evaluation' / 'eval_report.json'}")
    print(f"open the UI: DAGSTER_HOME={os.environ['DAGSTER_HOME']} dagster dev -m agentscaler_dagster.definitions")
    return 1 if summary["failed_domains"] else 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("materialize", help="materialise the whole asset graph on a Dagster instance ($DAGSTER_HOME)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="default", help="default: the embedded default; smoke: a small slice")
    parser.add_argument("--artifacts", help="artifact root (default: $AGENTSCALER_ARTIFACTS or ./artifacts)")
    parser.add_argument("--config", help='JSON of per-asset config overrides, e.g. \'{"tasks": {"n_tasks": 20}}\'')
    parser.set_defaults(func=_materialize)
