"""Community detection on the tool graph, and the clean-up that turns communities into domains.

Order: detect (Leiden, or Louvain as in the paper) -> split giant communities -> fold tiny ones.

- Giant: a community holding more than ``max_domain_share`` of all tools (and more than
  ``split_min_tools``: on a small corpus a share is a handful of tools) is re-partitioned on its own
  subgraph with the resolution doubled, up to ``MAX_SPLIT_ROUNDS`` times, until every part is under the
  cap (a near-clique of identical parameter lists may refuse: it is then left whole and reported).
- Tiny (fewer than ``min_domain_size`` tools, isolated tools included): merged into the neighbouring
  community it shares the most edge weight with; one with no edges to another community joins the
  community of the most similar tool outside it when that similarity reaches ``attach_floor``, else it goes
  to the set-aside ``misc`` group (label ``misc``, reported as ``misc_domain_id``).
- API fragments: a domain made only of one API's tools, where more of that API's tools are in another domain,
  joins the domain holding most of them when the two together stay within ``split_min_tools``
  (Leiden at a high threshold can cut three unit conversions off a 22-tool vehicle API; an API under the cap
  is one domain, as ``split_min_tools`` says).
- Twin APIs (last): two APIs in one domain that share at least ``twin_min_shared`` tool names are two
  implementations of one interface (BFCL's key-value and vector archival memory, a sandbox and a production
  host of one service). One environment cannot hold both without two tools that do the same thing under the
  same name, so the domain is cut along API lines: each API, largest first, joins the part it shares the most
  edge weight with among the parts that hold none of its twins, else starts a part. A part that would stay
  under ``min_domain_size`` is not cut off (reported as kept).
"""

from __future__ import annotations

import random

import numpy as np

from agentscaler_dagster.domains.graph import nearest_rows

MISC = -1
MAX_SPLIT_ROUNDS = 6


def _partition_type(objective: str):
    import leidenalg as la

    if objective == "modularity":
        return la.RBConfigurationVertexPartition  # modularity with a resolution; 1.0 is plain modularity
    if objective == "cpm":
        return la.CPMVertexPartition
    raise ValueError(f"unknown objective {objective!r}; expected 'modularity' or 'cpm'")


def detect(g, *, algorithm: str, objective: str, resolution: float, seed: int) -> np.ndarray:
    """Membership array (community index per vertex) of ``g`` (igraph, edge attribute ``weight``)."""
    if g.vcount() == 0:
        return np.zeros(0, dtype=np.int64)
    weights = "weight" if g.ecount() else None
    if algorithm == "leiden":
        import leidenalg as la

        part = la.find_partition(g, _partition_type(objective), weights=weights,
                                 resolution_parameter=resolution, seed=seed, n_iterations=2)
        membership = part.membership
    elif algorithm == "louvain":
        if objective != "modularity":
            raise ValueError("louvain optimises modularity only; use algorithm='leiden' for objective='cpm'")
        import igraph as ig

        # igraph draws from Python's random module unless told otherwise: pin it for the seed
        ig.set_random_number_generator(random.Random(seed))
        try:
            membership = g.community_multilevel(weights=weights, resolution=resolution).membership
        finally:
            ig.set_random_number_generator(random)
    else:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected 'leiden' or 'louvain'")
    return canonical_membership(np.asarray(membership, dtype=np.int64))


def canonical_membership(membership: np.ndarray) -> np.ndarray:
    """Renumber communities by first appearance so that equal partitions give equal arrays."""
    out = np.full(len(membership), MISC, dtype=np.int64)
    real = membership != MISC
    if real.any():
        _, first, inverse = np.unique(membership[real], return_index=True, return_inverse=True)
        rank = np.argsort(np.argsort(first))
        out[real] = rank[inverse]
    return out


def split_cap(n: int, max_share: float, min_tools: int = 1) -> int:
    """Largest community left whole: ``max_share`` of ``n`` tools, but never fewer than ``min_tools``."""
    return max(1, min_tools, int(np.floor(max_share * n)))


def split_giants(g, membership: np.ndarray, *, max_share: float, algorithm: str, objective: str,
                 resolution: float, seed: int, min_tools: int = 1) -> tuple[np.ndarray, list[dict]]:
    """Re-partition communities above ``split_cap`` vertices; returns membership and a log."""
    n = len(membership)
    cap = split_cap(n, max_share, min_tools)
    log: list[dict] = []
    membership = membership.copy()
    next_id = int(membership.max()) + 1 if n else 0
    queue = [c for c in np.unique(membership[membership != MISC]) if (membership == c).sum() > cap]
    while queue:
        c = queue.pop(0)
        members = np.flatnonzero(membership == c)
        sub = g.induced_subgraph(members.tolist())
        res, parts = resolution, None
        for round_ in range(1, MAX_SPLIT_ROUNDS + 1):
            res *= 2.0
            sub_m = detect(sub, algorithm=algorithm, objective=objective, resolution=res, seed=seed + round_)
            if sub_m.max() >= 1 and np.bincount(sub_m).max() <= cap:
                parts = sub_m
                break
            if sub_m.max() >= 1:
                parts = sub_m  # split but a part is still giant: keep the best split so far, recurse below
                break
        if parts is None:
            log.append({"community_size": int(len(members)), "split": False, "resolution": res})
            continue
        for p in range(1, int(parts.max()) + 1):
            membership[members[parts == p]] = next_id
            next_id += 1
        log.append({"community_size": int(len(members)), "split": True, "resolution": res,
                    "parts": int(parts.max()) + 1})
        for cid in [c, *range(next_id - int(parts.max()), next_id)]:
            if (membership == cid).sum() > cap:
                queue.append(cid)
    return canonical_membership(membership), log


def _strongest_neighbour(sources, targets, weights, membership, tiny: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each tiny community with edges to another community: (community, the one it shares most weight with)."""
    a, b = membership[sources], membership[targets]
    cross = (a != b) & (a != MISC) & (b != MISC)
    a, b, w = a[cross], b[cross], weights[cross].astype(np.float64)
    a, b, w = np.r_[a, b], np.r_[b, a], np.r_[w, w]
    keep = np.isin(a, tiny)
    a, b, w = a[keep], b[keep], w[keep]
    if len(a) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pairs, inverse = np.unique(np.column_stack([a, b]), axis=0, return_inverse=True)
    total = np.bincount(inverse.ravel(), weights=w)
    order = np.lexsort((pairs[:, 1], -total, pairs[:, 0]))  # per source: heaviest, then smallest id
    first = np.r_[True, np.diff(pairs[order, 0]) != 0]
    best = pairs[order][first]
    return best[:, 0], best[:, 1]


def _union(parent: dict[int, int], x: int) -> int:
    while parent.get(x, x) != x:
        parent[x] = parent.get(parent[x], parent[x])
        x = parent[x]
    return x


def fold_tiny(membership: np.ndarray, sources: np.ndarray, targets: np.ndarray, weights: np.ndarray,
              emb: np.ndarray, *, min_size: int, attach_floor: float) -> tuple[np.ndarray, dict]:
    """Merge communities under ``min_size`` into a neighbour; unattached ones go to ``MISC``."""
    membership = membership.copy()
    stats = {"merged_by_edges": 0, "attached_by_similarity": 0, "to_misc": 0}
    if min_size <= 1 or len(membership) == 0:
        return canonical_membership(membership), stats
    # rounds: every tiny community moves to its strongest neighbour at once (a union, so two tiny
    # communities that pick each other become one); repeat while a merge still leaves one tiny
    for _ in range(64):
        sizes = np.bincount(membership[membership != MISC], minlength=int(membership.max()) + 1)
        tiny = np.flatnonzero((sizes > 0) & (sizes < min_size))
        src, dst = _strongest_neighbour(sources, targets, weights, membership, tiny)
        if len(src) == 0:
            break
        parent: dict[int, int] = {}
        for x, y in zip(src.tolist(), dst.tolist()):
            rx, ry = _union(parent, x), _union(parent, y)
            if rx != ry:
                # the bigger (then smaller-id) community keeps its id
                keep, drop = sorted((rx, ry), key=lambda c: (-sizes[c], c))
                parent[drop] = keep
        stats["merged_by_edges"] += len(src)
        lookup = np.arange(len(sizes))
        for c in parent:
            lookup[c] = _union(parent, c)
        real = membership != MISC
        membership[real] = lookup[membership[real]]
    sizes = np.bincount(membership[membership != MISC], minlength=int(membership.max()) + 1)
    loose_rows = np.flatnonzero((membership != MISC) & (sizes[np.maximum(membership, 0)] < min_size))
    big_rows = np.flatnonzero((membership != MISC) & (sizes[np.maximum(membership, 0)] >= min_size))
    if len(loose_rows):
        # an unconnected tiny community joins the domain of the single most similar tool outside it
        nearest, sim = nearest_rows(emb, loose_rows, big_rows)
        best: dict[int, tuple[float, int]] = {}
        for row, j, s in zip(loose_rows.tolist(), nearest.tolist(), sim.tolist()):
            c = int(membership[row])
            if j >= 0 and (c not in best or s > best[c][0]):
                best[c] = (s, j)
        target = membership.copy()
        for c in sorted(set(membership[loose_rows].tolist())):
            rows = membership == c
            hit = best.get(c)
            if hit is not None and hit[0] >= attach_floor:
                target[rows] = membership[hit[1]]
                stats["attached_by_similarity"] += 1
            else:
                target[rows] = MISC
                stats["to_misc"] += int(rows.sum())
        membership = target
    return canonical_membership(membership), stats


def join_api_fragments(membership: np.ndarray, apis: list[str], *, max_tools: int) -> tuple[np.ndarray, list[dict]]:
    """Merge single-API domains into the domain holding more of the same API's tools (within ``max_tools``)."""
    membership = membership.copy()
    log: list[dict] = []
    if len(membership) == 0:
        return canonical_membership(membership), log
    count: dict[int, dict[str, int]] = {}
    for c, a in zip(membership.tolist(), apis):
        if c != MISC:
            count.setdefault(c, {}).setdefault(a, 0)
            count[c][a] += 1
    # smallest fragments first; ties by community id (deterministic)
    fragments = sorted((c for c, per in count.items() if len(per) == 1), key=lambda c: (sum(count[c].values()), c))
    for f in fragments:
        if f not in count or len(count[f]) != 1:
            continue  # already merged away, or something joined it
        (api, size), = count[f].items()
        homes = [c for c, per in count.items() if c != f and per.get(api)]
        if not homes:
            continue
        target = max(homes, key=lambda c: (count[c][api], sum(count[c].values()), -c))
        # only the smaller piece moves: a whole API beside a few of its tools elsewhere stays put
        if count[target][api] <= size or sum(count[target].values()) + size > max_tools:
            continue
        membership[membership == f] = target
        count[target][api] += size
        del count[f]
        log.append({"api": api, "tools": size, "into_size": sum(count[target].values()) - size})
    return canonical_membership(membership), log


def separate_twins(membership: np.ndarray, apis: list[str], names: list[str], sources: np.ndarray,
                   targets: np.ndarray, weights: np.ndarray, *, min_shared: int,
                   min_size: int) -> tuple[np.ndarray, list[dict]]:
    """Cut domains that hold twin APIs (``min_shared`` or more tool names in common) along API lines.

    ``apis[i]`` / ``names[i]`` are tool ``i``'s API key and its name as the source wrote it (lower case).
    Returns the membership and one log entry per domain that held twins.
    """
    membership = membership.copy()
    log: list[dict] = []
    if min_shared <= 0 or len(membership) == 0:
        return canonical_membership(membership), log
    next_id = int(membership.max()) + 1
    # the edges inside each domain, grouped once (a full directory has millions of edges)
    inside = membership[sources] == membership[targets]
    e_dom = membership[sources][inside]
    order = np.argsort(e_dom, kind="stable")
    e_dom, e_src, e_dst, e_w = e_dom[order], sources[inside][order], targets[inside][order], weights[inside][order]
    for c in sorted(set(membership.tolist()) - {MISC}):
        rows = np.flatnonzero(membership == c)
        by_api: dict[str, list[int]] = {}
        for i in rows.tolist():
            by_api.setdefault(apis[i], []).append(i)
        if len(by_api) < 2:
            continue
        api_names = {a: {names[i] for i in r} for a, r in by_api.items()}
        keys = sorted(by_api, key=lambda a: (-len(by_api[a]), a))
        twins = {a: {b for b in keys if b != a and len(api_names[a] & api_names[b]) >= min_shared} for a in keys}
        if not any(twins.values()):
            continue
        lo, hi = np.searchsorted(e_dom, c, side="left"), np.searchsorted(e_dom, c, side="right")
        edges = list(zip(e_src[lo:hi].tolist(), e_dst[lo:hi].tolist(), e_w[lo:hi].tolist()))
        part_of_row: dict[int, int] = {}
        parts: list[list[str]] = []
        for a in keys:
            a_rows = set(by_api[a])
            # edge weight between this API's tools and each part's tools
            weight = [0.0] * len(parts)
            for s_, t_, w in edges:
                for x, y in ((s_, t_), (t_, s_)):
                    if x in a_rows and y in part_of_row:
                        weight[part_of_row[y]] += w
            free = [k for k, members in enumerate(parts) if not (set(members) & twins[a])]
            if free:
                best = max(free, key=lambda k: (weight[k], sum(len(by_api[b]) for b in parts[k]), -k))
                parts[best].append(a)
            else:
                parts.append([a])
                best = len(parts) - 1
            for i in by_api[a]:
                part_of_row[i] = best
        sizes = [sum(len(by_api[a]) for a in part) for part in parts]
        entry = {"domain_size": int(len(rows)), "twins": sorted(sorted((a, b)) for a in keys for b in twins[a] if a < b),
                 "parts": [sorted(part) for part in parts], "kept_together": []}
        for k, part in enumerate(parts[1:], start=1):
            if sizes[k] < min_size:
                entry["kept_together"].append(sorted(part))
                continue
            for a in part:
                membership[by_api[a]] = next_id
            next_id += 1
        log.append(entry)
    return canonical_membership(membership), log


def modularity(g, membership: np.ndarray) -> float:
    """Weighted (resolution 1) modularity; misc tools count as singletons."""
    if g.ecount() == 0:
        return 0.0
    m = membership.copy()
    misc = np.flatnonzero(m == MISC)
    m[misc] = m.max() + 1 + np.arange(len(misc))
    return float(g.modularity(m.tolist(), weights="weight"))
