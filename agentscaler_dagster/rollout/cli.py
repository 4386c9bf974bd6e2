"""`agentscaler episodes`: environments in; tasks, trajectories, the filter funnel and a report out (no Dagster).

For every environment package under ``--environments`` it samples goal-level tasks (plus refusal tasks),
plays them with the programmatic user and the oracle agent (with injected, recorded mistakes), filters
them with the one judge and writes ``OUT/<domain>/{tasks,trajectories,filtered_trajectories}.jsonl`` and
``OUT/episodes_report.json``: the shape of the tasks (lookups needed, facts told only when asked, refusals,
distinct intents), turns and tool calls per episode, the funnel, the filter's precision and recall against
the injected mistakes, and every user message that leaks the agent's side (tool or argument names, JSON,
ids the user could not know). The defaults are the Dagster assets' defaults (a test keeps them equal).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DEFAULTS = {"n_tasks": 12, "policy_share": 0.1, "max_walk_length": 4, "trials": 2, "max_turns": 20,
            "error_rate": 0.15, "seed": 0}


def register(subparsers) -> None:
    p = subparsers.add_parser("episodes", help="tasks, simulated episodes and the filter: environments -> report",
                              description=__doc__.splitlines()[0])
    p.add_argument("--environments", required=True, type=Path, help="folder of environment packages (agentscaler environments)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--n-tasks", type=int, default=DEFAULTS["n_tasks"], help="random-walk tasks per domain")
    p.add_argument("--policy-share", type=float, default=DEFAULTS["policy_share"], help="target share of refusal tasks among all tasks")
    p.add_argument("--max-walk-length", type=int, default=DEFAULTS["max_walk_length"])
    p.add_argument("--trials", type=int, default=DEFAULTS["trials"], help="episodes per task")
    p.add_argument("--max-turns", type=int, default=DEFAULTS["max_turns"])
    p.add_argument("--error-rate", type=float, default=DEFAULTS["error_rate"], help="oracle agent: share of episodes with one injected mistake")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument("--domain", action="append", default=None, help="only this domain id (repeatable)")
    p.set_defaults(func=handler)


def _check(name: str, value: float, low: float, high: float | None = None) -> None:
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"--{name.replace('_', '-')} must be {bound}, got {value}")


def run_episodes(environments: Path, out: Path, *, n_tasks: int = DEFAULTS["n_tasks"],
                 policy_share: float = DEFAULTS["policy_share"], max_walk_length: int = DEFAULTS["max_walk_length"],
                 trials: int = DEFAULTS["trials"], max_turns: int = DEFAULTS["max_turns"],
                 error_rate: float = DEFAULTS["error_rate"], seed: int = DEFAULTS["seed"],
                 domains: list[str] | None = None, progress=None) -> dict:
    """Tasks, episodes, filter and report for every environment under ``environments``; see the module docstring."""
    from agentscaler_dagster.contracts import canonical_json
    from agentscaler_dagster.filters import STAGES, apply_filters, injected_error_scores
    from agentscaler_dagster.rollout import OracleAgentSimulator, ScenarioUserSimulator, run_rollouts, write_trajectories
    from agentscaler_dagster.sandbox import Environment
    from agentscaler_dagster.tasks import policy_tasks, refusal_count, sample_tasks, summarise_tasks, write_tasks
    from agentscaler_dagster.tasks.leakage import LeakDetector, scan_user_messages

    _check("n_tasks", n_tasks, 0)
    _check("policy_share", policy_share, 0.0, 0.99)
    _check("trials", trials, 1)
    _check("max_turns", max_turns, 1)
    _check("error_rate", error_rate, 0.0, 1.0)
    packages = sorted(p for p in Path(environments).iterdir() if (p / "manifest.json").is_file())
    if domains:
        missing = sorted(set(domains) - {p.name for p in packages})
        if missing:
            raise ValueError(f"no environment package for {missing} under {environments}")
        packages = [p for p in packages if p.name in domains]
    if not packages:
        raise ValueError(f"no environment packages (folders with manifest.json) under {environments}")
    all_tasks, all_episodes, all_kept, leaks = [], [], [], []
    funnel = {"input": 0, **{s: 0 for s in STAGES}}
    scores_in, rejected = [], []
    started = time.monotonic()
    for i, package in enumerate(packages):
        with Environment.load(package) as env:
            tasks = sample_tasks(env, n_tasks=n_tasks, seed=seed, max_walk_length=max_walk_length)
            tasks += policy_tasks(env, n_tasks=refusal_count(policy_share, len(tasks)), seed=seed)
            episodes = run_rollouts(tasks, env, lambda s: OracleAgentSimulator(s, error_rate=error_rate),
                                    ScenarioUserSimulator, trials=trials, seed=seed, max_turns=max_turns)
            writes = {s.name for s in env.tool_specs if s.operation == "write"}
            detector = LeakDetector(env)
        by_id = {t.task_id: t for t in tasks}
        result = apply_filters(episodes, by_id, write_tools=writes)
        folder = out / package.name
        write_tasks(tasks, folder / "tasks.jsonl")
        write_trajectories(episodes, folder / "trajectories.jsonl", timings=False)
        write_trajectories(result.kept, folder / "filtered_trajectories.jsonl", timings=False)
        for task in tasks:
            for k, request in enumerate(task.scenario.requests if task.scenario else []):
                leaks += [f"{package.name} {task.task_id} request {k}: {x}"
                          for x in detector.leaks(request.text, task.scenario)]
        for e in episodes:
            leaks += [f"{package.name} {e.trajectory_id} {x}" for x in
                      scan_user_messages(detector, e.messages, by_id[e.task_id].scenario)]
        for k in funnel:
            funnel[k] += result.funnel.get(k, 0)
        scores_in += episodes
        rejected += result.rejected
        all_tasks += tasks
        all_episodes += episodes
        all_kept += result.kept
        if progress:
            progress(i + 1, len(packages), package.name, time.monotonic() - started)
    from agentscaler_dagster.filters import FilterResult

    scores = injected_error_scores(scores_in, FilterResult(kept=all_kept, rejected=rejected, funnel=funnel))
    finished = [e for e in all_episodes if e.termination == "user_stop"]
    report = {
        "environments": len(packages),
        "settings": {"n_tasks": n_tasks, "policy_share": policy_share, "max_walk_length": max_walk_length,
                     "trials": trials, "max_turns": max_turns, "error_rate": error_rate, "seed": seed},
        "tasks": {k: v for k, v in summarise_tasks(all_tasks).items() if k != "tool_calls_by_tool"},
        "episodes": len(all_episodes),
        "terminations": _count(e.termination for e in all_episodes),
        "mean_turns": round(sum(_turns(e.messages) for e in finished) / len(finished), 3) if finished else 0.0,
        "mean_tool_calls": round(sum(_calls(e.messages) for e in finished) / len(finished), 3) if finished else 0.0,
        "mean_user_messages": round(sum(_role(e.messages, "user") for e in finished) / len(finished), 3) if finished else 0.0,
        "funnel": funnel,
        "filter_scores": scores,
        "leaks": len(leaks),
        "leak_examples": leaks[:20],
        "seconds": round(time.monotonic() - started, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "episodes_report.json").write_text(canonical_json(report) + "\n", encoding="utf-8")
    return report


def _count(values) -> dict:
    out: dict = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def _role(messages: list[dict], role: str) -> int:
    return sum(1 for m in messages if m.get("role") == role)


def _turns(messages: list[dict]) -> int:
    """Assistant messages: one per agent turn (a tool call or a reply)."""
    return _role(messages, "assistant")


def _calls(messages: list[dict]) -> int:
    return sum(len(m.get("tool_calls") or []) for m in messages if m.get("role") == "assistant")


def handler(args: argparse.Namespace) -> int:
    def progress(done, total, name, seconds):
        print(f"[{done}/{total}] {name} ({seconds:.0f} s)", file=sys.stderr, flush=True)

    report = run_episodes(args.environments, args.out, n_tasks=args.n_tasks, policy_share=args.policy_share,
                          max_walk_length=args.max_walk_length, trials=args.trials, max_turns=args.max_turns,
                          error_rate=args.error_rate, seed=args.seed, domains=args.domain, progress=progress)
    final = report["filter_scores"]["exact_match"]
    print(json.dumps({"out": str(args.out), "tasks": report["tasks"]["n_tasks"], "episodes": report["episodes"],
                      "share_needing_lookup": report["tasks"]["share_needing_lookup"],
                      "share_with_hidden_facts": report["tasks"]["share_with_hidden_facts"],
                      "share_policy_refusals": report["tasks"]["share_policy_refusals"],
                      "mean_turns": report["mean_turns"], "mean_tool_calls": report["mean_tool_calls"],
                      "precision": final["precision"], "recall": final["recall"], "leaks": report["leaks"],
                      "seconds": report["seconds"]}))
    return 0
