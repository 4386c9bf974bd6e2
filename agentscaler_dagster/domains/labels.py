"""Readable domain labels and partition-key-safe domain ids.

A label is the three most characteristic words of a domain's tools: words of tool names and API
titles, counted once per tool, weighted by how specific they are to this domain (TF-IDF over domains),
with CRUD verbs and API boilerplate left out. ``orders-customers-refunds`` reads better than ``d07``.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from agentscaler_dagster.contracts import ToolSpec
from agentscaler_dagster.domains.embed import split_words

_LABEL_STOPWORDS = frozenset(
    """
    get list create update delete remove add set put post patch head options fetch retrieve read write find
    search query show view return returns by for of the a an and or to in on at from with all new my me
    id ids api apis v1 v2 v3 v4 v5 beta alpha service services rest http https json xml info details detail
    item items data resource resources object objects by_id one many batch bulk async sync
    com net org www io amazonaws googleapis azure microsoft google aws amazon
    """.split()
)
_ID_SAFE = re.compile(r"[^a-z0-9_-]+")
MAX_ID_LEN = 60


def tool_words(tool: ToolSpec) -> set[str]:
    words = set(split_words(tool.name))
    if tool.source.api_title:
        words |= set(split_words(tool.source.api_title))
    return {w for w in words if len(w) > 2 and not w.isdigit() and w not in _LABEL_STOPWORDS}


def make_labels(groups: list[list[ToolSpec]], n_words: int = 3) -> list[str]:
    """One label per group (in order): up to ``n_words`` words joined by ``-``."""
    per_group = []
    doc_freq: Counter[str] = Counter()
    for tools in groups:
        counts: Counter[str] = Counter()
        for t in tools:
            counts.update(tool_words(t))
        per_group.append(counts)
        doc_freq.update(counts.keys())
    n_groups = max(1, len(groups))
    labels = []
    for tools, counts in zip(groups, per_group):
        scored = sorted(
            counts.items(),
            key=lambda kv: (-(kv[1] / max(1, len(tools))) * math.log(1 + n_groups / doc_freq[kv[0]]), kv[0]),
        )
        words = [w for w, _ in scored[:n_words]]
        labels.append("-".join(words) if words else "tools")
    return labels


def domain_id(index: int, width: int, label: str) -> str:
    """``d07-orders-customers``: index first so ids sort and stay unique; lowercase [a-z0-9_-], <= 60 chars."""
    slug = _ID_SAFE.sub("-", label.lower()).strip("-") or "tools"
    head = f"d{index:0{width}d}"
    return f"{head}-{slug}"[:MAX_ID_LEN].rstrip("-")
