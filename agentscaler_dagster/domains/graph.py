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
BF16_MARGIN = 0.02  # bf16 dot products of unit vectors err by < 0.008 at d <= 1024; candidates get this slack
EXACT_CHUNK = 32768  # candidate pairs re-scored in float32 per step (bounds the gathered rows' memory)


def bf16_matmul_is_fast() -> bool:
    """True on CPUs with native bf16 dot products (AVX512-BF16 / AMX), where bf16 GEMM is ~3x float32."""
    try:
        import torch

        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except Exception:
        return False


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

        g = ig.Graph(n=self.n, directed=False)
        g.add_edges(np.column_stack([self.sources, self.targets]))
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


def _exact_dots(emb: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    out = np.empty(len(rows), dtype=np.float32)
    for c0 in range(0, len(rows), EXACT_CHUNK):
        r, c = rows[c0 : c0 + EXACT_CHUNK], cols[c0 : c0 + EXACT_CHUNK]
        out[c0 : c0 + EXACT_CHUNK] = np.einsum("ij,ij->i", emb[r], emb[c])
    return out


def similarity_edges(emb: np.ndarray, threshold: float, top_k: int | None = 20, *,
                     block_rows: int | None = None, bf16: bool | None = None, progress=None) -> ToolGraph:
    """Edges ``(i, j, cos)`` with ``i < j`` and ``cos > threshold`` among L2-normalised rows of ``emb``.

    Each block keeps, per row and per column, only its ``top_k`` strongest candidates: any edge that
    ends among the global top_k of one of its ends survives that local cut, so the final exact cut on
    the pooled candidates gives the same edges as a dense computation would.

    ``bf16`` (default: where the CPU has native bf16 dot products) finds candidates with a bf16
    matrix product at ``threshold - BF16_MARGIN`` and re-scores only those in float32, so edges and
    weights are the float32 ones at a third of the cost.
    """
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    n = emb.shape[0]
    if emb.ndim != 2:
        raise ValueError(f"similarity_edges: embeddings must be 2-D, got shape {emb.shape}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"similarity_edges: top_k must be >= 1 or None, got {top_k}")
    if block_rows is None:
        block_rows = int(max(64, min(4096, SLAB_BYTES // max(1, 4 * n))))
    if bf16 is None:
        bf16 = n >= 4096 and bf16_matmul_is_fast()
    if bf16:
        import torch

        emb16 = torch.from_numpy(emb).to(torch.bfloat16)
    parts_s, parts_t, parts_w = [], [], []
    for r0 in range(0, n, block_rows):
        r1 = min(n, r0 + block_rows)
        # rows r0..r1 against columns r0..n: the upper triangle and the diagonal block
        if bf16:
            with torch.inference_mode():
                pairs = torch.nonzero(emb16[r0:r1] @ emb16[r0:].T > threshold - BF16_MARGIN).numpy()
            rr, cc = pairs[:, 0], pairs[:, 1]
            keep = cc > rr  # strictly upper: column index (r0 + c) > row index (r0 + r)
            s, t = rr[keep].astype(np.int64) + r0, cc[keep].astype(np.int64) + r0
            ww = _exact_dots(emb, s, t)
            keep = ww > threshold
            s, t, ww = s[keep], t[keep], ww[keep]
        else:
            sims = emb[r0:r1] @ emb[r0:].T
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


def tool_graph(unique_emb: np.ndarray, inverse: np.ndarray, threshold: float, top_k: int | None = 20, *,
               progress=None) -> ToolGraph:
    """The tool graph when several tools share one embedded text (``inverse[i]`` = text row of tool i).

    Identical texts are computed once: the similarity graph is built between *representatives* (the
    first tool of each distinct text) and every other tool is tied to its representative with weight
    1.0 (its true similarity). So a tool's top_k are k distinct parameter lists, not k copies of its
    own, and a corpus with many repeated lists costs only its distinct ones.
    """
    inverse = np.asarray(inverse, dtype=np.int64)
    n = len(inverse)
    used, first = np.unique(inverse, return_index=True)
    rep_of_text = np.full(len(unique_emb), -1, dtype=np.int64)
    rep_of_text[used] = first
    sub = similarity_edges(unique_emb[used], threshold, top_k, progress=progress)
    a, b = first[sub.sources], first[sub.targets]
    src, dst = np.minimum(a, b), np.maximum(a, b)
    rep = rep_of_text[inverse]
    copies = np.flatnonzero(rep != np.arange(n))
    src = np.r_[src, rep[copies]]
    dst = np.r_[dst, copies]
    w = np.r_[sub.weights, np.ones(len(copies), dtype=np.float32)].astype(np.float32)
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
