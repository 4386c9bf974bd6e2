"""The tool graph: tools linked where their parameter embeddings are close (cosine > threshold).

Similarities are computed in row blocks against the upper triangle only, so memory stays at one
``block x n`` slab and each pair is computed once; no ``n x n`` matrix is ever held. The top-k cap
keeps an edge when it is among the ``top_k`` strongest of *either* end (the union of both ends'
k-nearest lists), so a hub cannot drown its neighbourhood and no tool loses its best links.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SLAB_BYTES = 256 * 2**20  # one similarity slab (block rows x n float32)


@dataclass(frozen=True)
class ToolGraph:
    """Undirected weighted graph on tools ``0..n-1``; each edge once, ``source < target``."""

    n: int
    sources: np.ndarray  # int64
    targets: np.ndarray  # int64
    weights: np.ndarray  # float32 cosine similarity

    @property
    def n_edges(self) -> int:
        return int(len(self.sources))

    def degrees(self) -> np.ndarray:
        return np.bincount(self.sources, minlength=self.n) + np.bincount(self.targets, minlength=self.n)

    def to_igraph(self):
        import igraph as ig

        g = ig.Graph(n=self.n, edges=np.column_stack([self.sources, self.targets]).tolist(), directed=False)
        g.es["weight"] = self.weights.astype(float).tolist()
        return g


def _rank_within(groups: np.ndarray, weights: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Rank of each entry inside its group, strongest first; ties broken by the smaller ``other`` index."""
    order = np.lexsort((other, -weights, groups))
    g_sorted = groups[order]
    starts = np.r_[0, np.flatnonzero(np.diff(g_sorted)) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(g_sorted)]))
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order)) - run_start
    return ranks


def _keep_top_k(src: np.ndarray, dst: np.ndarray, w: np.ndarray, top_k: int) -> np.ndarray:
    """Mask of edges within the top_k of their source or of their target."""
    if len(src) == 0:
        return np.zeros(0, dtype=bool)
    return (_rank_within(src, w, dst) < top_k) | (_rank_within(dst, w, src) < top_k)


def similarity_edges(emb: np.ndarray, threshold: float, top_k: int | None = 20, *,
                     block_rows: int | None = None, progress=None) -> ToolGraph:
    """Edges ``(i, j, cos)`` with ``i < j`` and ``cos > threshold`` among L2-normalised rows of ``emb``.

    Each block keeps, per row and per column, only its ``top_k`` strongest candidates: any edge that
    ends among the global top_k of one of its ends survives that local cut, so the final exact cut on
    the pooled candidates gives the same edges as a dense computation would.
    """
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    n = emb.shape[0]
    if emb.ndim != 2:
        raise ValueError(f"similarity_edges: embeddings must be 2-D, got shape {emb.shape}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"similarity_edges: top_k must be >= 1 or None, got {top_k}")
    if block_rows is None:
        block_rows = int(max(64, min(4096, SLAB_BYTES // max(1, 4 * n))))
    parts_s, parts_t, parts_w = [], [], []
    for r0 in range(0, n, block_rows):
        r1 = min(n, r0 + block_rows)
        sims = emb[r0:r1] @ emb[r0:].T  # rows r0..r1 against columns r0..n: the upper triangle and the diagonal block
        # strictly upper: column index (r0 + c) > row index (r0 + r)
        rr, cc = np.nonzero(sims > threshold)
        keep = cc > rr
        rr, cc = rr[keep], cc[keep]
        ww = sims[rr, cc]
        del sims
        s, t = rr.astype(np.int64) + r0, cc.astype(np.int64) + r0
        if top_k is not None and len(s):
            m = _keep_top_k(s, t, ww, top_k)
            s, t, ww = s[m], t[m], ww[m]
        parts_s.append(s)
        parts_t.append(t)
        parts_w.append(ww.astype(np.float32))
        if progress and (r0 // block_rows) % 16 == 0:
            progress(f"tool graph: rows {r1}/{n}")
    src = np.concatenate(parts_s) if parts_s else np.zeros(0, dtype=np.int64)
    dst = np.concatenate(parts_t) if parts_t else np.zeros(0, dtype=np.int64)
    w = np.concatenate(parts_w) if parts_w else np.zeros(0, dtype=np.float32)
    if top_k is not None and len(src):
        m = _keep_top_k(src, dst, w, top_k)
        src, dst, w = src[m], dst[m], w[m]
    order = np.lexsort((dst, src))
    return ToolGraph(n=n, sources=src[order], targets=dst[order], weights=w[order])


def nearest_rows(emb: np.ndarray, queries: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query row: the most similar row among ``candidates`` (never itself) and the similarity."""
    if len(queries) == 0 or len(candidates) == 0:
        return np.full(len(queries), -1, dtype=np.int64), np.full(len(queries), -np.inf, dtype=np.float32)
    best = np.full(len(queries), -1, dtype=np.int64)
    best_sim = np.full(len(queries), -np.inf, dtype=np.float32)
    cand = emb[candidates]
    step = int(max(64, SLAB_BYTES // max(1, 4 * len(candidates))))
    for q0 in range(0, len(queries), step):
        q = queries[q0 : q0 + step]
        sims = emb[q] @ cand.T
        sims[candidates[None, :] == q[:, None]] = -np.inf
        idx = np.argmax(sims, axis=1)
        best[q0 : q0 + step] = candidates[idx]
        best_sim[q0 : q0 + step] = sims[np.arange(len(q)), idx]
    return best, best_sim
