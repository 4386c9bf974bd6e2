"""`agentscaler environments`: corpus + domains in, one environment package per domain out (no Dagster needed).

Writes ``OUT/<domain_id>/`` (see package.py) and ``OUT/environments_report.json``: per domain its tools,
tool kinds, dependency edges, validation status, each failed property by tool and the tools quarantined (left
out, with the reason: see package.py), plus the totals (share of tools with a kind other than ``other``, share
of domains that pass semantic validation, domains kept by quarantine, failure reasons).
Exit 0 when it ran, even where some domains failed validation; 2 with a one-line reason when it could not.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

from agentscaler_dagster.contracts import Domain, ToolSpec


def register(subparsers) -> None:
    p = subparsers.add_parser("environments", help="environment packages: corpus + domains -> environments",
                              description="Schema, tool code, initial states, policy and semantic validation "
                                          "for every domain.")
    p.add_argument("--corpus", required=True, type=Path, help="folder holding corpus.parquet (agentscaler ingest)")
    p.add_argument("--domains", required=True, type=Path, help="folder holding domains.parquet (agentscaler domains)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-states", type=int, default=3, help="initial states per domain")
    p.add_argument("--edge-embedder", choices=["minilm", "hashing", "none"], default="none",
                   help="link differently named fields by embedding similarity (the Dagster asset uses minilm)")
    p.add_argument("--domain", action="append", default=None, help="only this domain id (repeatable)")
    p.set_defaults(func=handler)


def build_all(tools: list[ToolSpec], domains: dict[str, Domain], out: Path, *, seed: int = 0, n_states: int = 3,
              field_matcher=None, progress=None) -> dict:
    """Build every domain's package under ``out``; return the report (also written as environments_report.json)."""
    from agentscaler_dagster.envgen.package import build_environment
    from agentscaler_dagster.sandbox import Runtime

    by_id = {t.tool_id: t for t in tools}
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    runtime = Runtime()
    try:
        for domain_id in sorted(domains):
            domain = domains[domain_id]
            specs = [by_id[t] for t in domain.tool_ids if t in by_id]
            if not specs:
                rows.append({"domain_id": domain_id, "error": "none of its tool ids is in the corpus"})
                continue
            try:
                manifest = build_environment(domain, specs, out / domain_id, seed=seed, n_states=n_states,
                                             field_matcher=field_matcher, runtime=runtime)
            except Exception as exc:  # one domain that cannot be built is reported, the others still run
                rows.append({"domain_id": domain_id, "error": f"{type(exc).__name__}: {exc}"})
                continue
            report = json.loads((out / domain_id / "validation.json").read_text("utf-8"))
            rows.append({
                "domain_id": domain_id, "label": domain.label, "tools": manifest.n_tools,
                "tool_kinds": manifest.tool_kinds, "edges": manifest.n_edges, "usable": manifest.usable,
                "semantic_valid": report.get("semantic_valid", False), "pass_rate": manifest.pass_rate,
                "failed_properties": {t["tool"]: t["failed"] for t in report.get("semantics", []) if t["failed"]},
                "run_failures": {t["tool"]: t["error"] for t in report.get("tools", []) if not t["ok"]},
                "quarantined_tools": report.get("quarantined_tools", {}),
                "quarantine_note": report.get("quarantine_note"),
            })
            if progress:
                progress(f"{domain_id}: {manifest.n_tools} tools, valid={rows[-1]['semantic_valid']}")
    finally:
        runtime.close()
    report = {"seed": seed, "n_states": n_states, "totals": summarise(rows), "domains": rows}
    (out / "environments_report.json").write_text(json.dumps(report, sort_keys=True, indent=2) + "\n", "utf-8")
    return report


def summarise(rows: list[dict]) -> dict:
    built = [r for r in rows if "error" not in r]
    kinds = collections.Counter(k for r in built for k in r["tool_kinds"].values())
    n_tools = sum(kinds.values())
    reasons = collections.Counter()
    for r in built:
        for failed in r["failed_properties"].values():
            reasons.update(f.split(":")[0] for f in failed)
    valid = sum(1 for r in built if r["semantic_valid"] and r["usable"])
    saved = [r for r in built if r["usable"] and r.get("quarantined_tools")]
    return {
        "domains": len(rows), "built": len(built), "errors": len(rows) - len(built),
        "valid_domains": valid, "valid_share": round(valid / len(rows), 4) if rows else 0.0,
        "domains_with_quarantine": len(saved),
        "quarantined_tools": sum(len(r["quarantined_tools"]) for r in saved),
        "tools": n_tools, "typed_share": round(1 - kinds.get("other", 0) / n_tools, 4) if n_tools else 0.0,
        "kinds": dict(sorted(kinds.items())), "failure_reasons": dict(reasons.most_common(12)),
    }


def handler(args: argparse.Namespace) -> int:
    from agentscaler_dagster.domains.cli import load_corpus
    from agentscaler_dagster.domains.store import read_domains

    for flag, folder, wanted in (("--corpus", args.corpus, "corpus.parquet"),
                                 ("--domains", args.domains, "domains.parquet")):
        if not (folder / wanted).is_file():
            print(f"agentscaler environments: {flag} {folder}: no {wanted} there", file=sys.stderr)
            return 2
    if args.n_states < 1:
        print(f"agentscaler environments: --n-states must be >= 1, got {args.n_states}", file=sys.stderr)
        return 2
    tools, errors = load_corpus(args.corpus)
    for msg in errors:
        print(f"agentscaler environments: skipped {msg}", file=sys.stderr)
    domains = read_domains(args.domains / "domains.parquet")
    if args.domain:
        unknown = sorted(set(args.domain) - set(domains))
        if unknown:
            print(f"agentscaler environments: unknown domain(s) {', '.join(unknown)}; "
                  f"{len(domains)} domains in {args.domains}", file=sys.stderr)
            return 2
        domains = {d: domains[d] for d in args.domain}
    matcher = None
    if args.edge_embedder != "none":
        from agentscaler_dagster.domains.embed import make_embedder
        from agentscaler_dagster.envgen.fieldmatch import FieldMatcher

        matcher = FieldMatcher(make_embedder(args.edge_embedder))
    report = build_all(tools, domains, args.out, seed=args.seed, n_states=args.n_states, field_matcher=matcher,
                       progress=lambda m: print(m, file=sys.stderr))
    print(json.dumps(report["totals"] | {"out": str(args.out)}, sort_keys=True))
    return 0
