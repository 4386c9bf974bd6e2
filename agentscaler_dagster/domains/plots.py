"""Pictures for the domains asset's metadata (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_META = {"Software": None}  # keeps the PNG free of the matplotlib version string


def plot_domain_sizes(sizes: list[int], labels: list[str], path: Path, top: int = 30) -> Path:
    """Left: histogram of domain sizes (log bins); right: the largest domains by size, labelled."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    arr = np.asarray(sizes, dtype=float)
    if len(arr):
        bins = np.unique(np.round(np.logspace(0, np.log10(max(2.0, arr.max() + 1)), 20)))
        ax1.hist(arr, bins=bins, color="#4477aa")
        ax1.set_xscale("log")
    ax1.set_xlabel("tools per domain")
    ax1.set_ylabel("domains")
    ax1.set_title(f"{len(sizes)} domains, {int(arr.sum())} tools")
    order = np.argsort(-arr, kind="stable")[:top]
    ax2.barh(range(len(order)), arr[order][::-1], color="#66aa55")
    ax2.set_yticks(range(len(order)))
    ax2.set_yticklabels([labels[i][:40] for i in order][::-1], fontsize=7)
    ax2.set_xlabel("tools")
    ax2.set_title(f"largest {len(order)} domains")
    fig.tight_layout()
    fig.savefig(path, metadata=_META)
    plt.close(fig)
    return path


def plot_domain_graph(sizes: list[int], labels: list[str], links: dict[tuple[int, int], float], path: Path,
                      seed: int = 0, top: int = 40) -> Path:
    """Domains as nodes (area ~ size), inter-domain edge weight as line width; the ``top`` largest only."""
    import networkx as nx

    plt = _pyplot()
    keep = [int(i) for i in np.argsort(-np.asarray(sizes), kind="stable")[:top]]
    g = nx.Graph()
    for i in keep:
        g.add_node(i)
    kept = set(keep)
    for (a, b), w in sorted(links.items()):
        if a < b and a in kept and b in kept:
            g.add_edge(a, b, weight=w)
    pos = nx.spring_layout(g, seed=seed, weight="weight")
    fig, ax = plt.subplots(figsize=(9, 9), dpi=100)
    if g.number_of_edges():
        ws = np.array([d["weight"] for _, _, d in g.edges(data=True)])
        nx.draw_networkx_edges(g, pos, ax=ax, width=0.5 + 4 * ws / ws.max(), alpha=0.4)
    nx.draw_networkx_nodes(g, pos, ax=ax, node_size=[20 + 8 * sizes[i] ** 0.8 for i in g.nodes],
                           node_color="#4477aa", alpha=0.8)
    nx.draw_networkx_labels(g, pos, ax=ax, labels={i: labels[i][:24] for i in g.nodes}, font_size=6)
    ax.set_axis_off()
    ax.set_title(f"domain graph: largest {len(keep)} domains")
    fig.tight_layout()
    fig.savefig(path, metadata=_META)
    plt.close(fig)
    return path
