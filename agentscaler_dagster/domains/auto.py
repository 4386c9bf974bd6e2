"""Automatic settings for a corpus nobody tuned for: the threshold and the resolution chosen from the corpus itself.

Threshold (``threshold=None``): from the corpus's own similarity distribution. For every distinct tool text
(a fixed sample of ``SAMPLE_ROWS`` on big corpora, seed 0) take its similarity to its ``K``-th most similar
other text; the threshold is the ``QUANTILE`` of those values, clipped to ``[LOW, HIGH]``. So a corpus whose
texts are all alike (one vendor's boilerplate) gets a high bar and a sparse, heterogeneous one a low bar:
in both, most tools keep a handful of links and few are left isolated. A fixed cosine means different things
for different text representations and corpora (benchmarks/RESULTS.md, Domain quality).

Resolution (``resolution=None``): from a target range of domain sizes. Leiden runs on the tool graph at each
resolution of ``RESOLUTION_GRID``; the chosen one is the smallest whose *typical domain size* (the size of
the community the median tool sits in, so that many tiny communities do not count for more than the tools in
them) is at most ``TARGET_SIZE``; when even the largest grid value stays above, the largest (tried first, so
a corpus too big for the grid costs one Leiden run, not nine). A domain's tools
all go into an agent's prompt and its environment: a few dozen tools is what one environment can hold.
"""

from __future__ import annotations

import numpy as np

K = 10
QUANTILE = 0.5
LOW, HIGH = 0.3, 0.9
SAMPLE_ROWS = 4000
RESOLUTION_GRID = (0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0)
TARGET_SIZE = 40


def kth_similarities(emb: np.ndarray, k: int = K, sample: int = SAMPLE_ROWS, seed: int = 0) -> np.ndarray:
    """Per sampled row of ``emb`` (L2-normalised): cosine similarity to its k-th most similar other row."""
    n = len(emb)
    if n < 2:
        return np.zeros(0, dtype=np.float32)
    k = min(k, n - 1)
    rows = np.arange(n) if n <= sample else np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))
    out = np.empty(len(rows), dtype=np.float32)
    step = max(1, (64 * 2**20) // max(1, 4 * n))  # one block of sims stays near 64 MiB
    for r0 in range(0, len(rows), step):
        block = rows[r0 : r0 + step]
        sims = emb[block] @ emb.T
        sims[np.arange(len(block)), block] = -np.inf  # never itself
        out[r0 : r0 + step] = -np.partition(-sims, k - 1, axis=1)[:, k - 1]
    return out


def auto_threshold(emb: np.ndarray, *, k: int = K, quantile: float = QUANTILE) -> tuple[float, dict]:
    """(threshold, how it was chosen) for the distinct texts' vectors ``emb``."""
    kth = kth_similarities(emb, k)
    raw = float(np.quantile(kth, quantile)) if len(kth) else HIGH
    value = round(float(np.clip(raw, LOW, HIGH)), 4)
    return value, {"rule": f"quantile {quantile} of each text's similarity to its {k}-th nearest text, "
                           f"clipped to [{LOW}, {HIGH}]",
                   "kth_similarity_quantiles": {q: round(float(np.quantile(kth, q)), 4) for q in (0.1, 0.25, 0.5, 0.75, 0.9)}
                   if len(kth) else {}, "sampled_texts": int(len(kth)), "value": value}


def typical_size(membership: np.ndarray) -> int:
    """Size of the community the median tool belongs to (tools sorted by the size of their community)."""
    if len(membership) == 0:
        return 0
    sizes = np.bincount(membership)[membership]
    return int(np.sort(sizes)[len(sizes) // 2])


def auto_resolution(g, detect, *, seed: int, target: int = TARGET_SIZE) -> tuple[float, dict, np.ndarray]:
    """(resolution, how it was chosen, its membership): the smallest grid resolution whose typical domain size
    is <= target.

    ``detect(g, resolution=..., seed=...)`` returns a membership array (the configured algorithm). The top of
    the grid is tried first: the typical size falls as the resolution rises (nearly strictly: on the whole
    APIs-guru directory 677 tools at 0.25, 587 at 0.35, 625 at 0.5, ..., 255 at 4.0), so when the top is still
    above the target no lower value reaches it, and the eight other Leiden runs on a million-edge graph
    (about 60 s) are skipped. Otherwise the grid is scanned from the bottom as before. The chosen resolution's
    membership is returned so that the caller does not run the same detection again.
    """
    tried = []
    runs: dict[float, np.ndarray] = {}

    def size_at(res: float) -> int:
        runs[res] = detect(g, resolution=res, seed=seed)
        size = typical_size(runs[res])
        tried.append({"resolution": res, "typical_size": size})
        return size

    chosen = RESOLUTION_GRID[-1]
    if size_at(chosen) <= target:
        for res in RESOLUTION_GRID[:-1]:
            if size_at(res) <= target:
                chosen = res
                break
    return chosen, {"rule": f"smallest of {list(RESOLUTION_GRID)} whose typical domain size (the median tool's "
                            f"community) is <= {target} tools; the largest when even that one is above",
                    "tried": tried, "value": chosen}, runs[chosen]
