"""Quality filter and dedup over the union of all files, and unique names.

Per tool (in ``normalise``): no usable description (fewer than 3 words in description and summary) or an
unusable parameter schema -> filtered, with the reason.

Over the union, in a fixed order (files by path, operations in file order):
    exact duplicate: same normalised name, description, parameters and returns as a tool kept earlier;
    near duplicate: same normalised name (letters and digits, lower-cased) and same parameter signature
    (sorted (argument, type) pairs) as a tool kept earlier.
The first occurrence is kept; the others are counted as duplicates, each naming the tool it repeats.

Unique names: names are compared case-insensitively. Among tools that share a name the first keeps it;
each later one gets ``_<api slug>`` (from the API title, else the provider, else the file stem), and when
that is taken too, ``_<first 8 hex of its tool_id>``.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from agentscaler_dagster.corpus.normalise import with_suffix


def dedup(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """(kept, duplicates) with records in the given order; duplicates carry reason and duplicate_of."""
    exact: dict[str, dict] = {}
    near: dict[str, dict] = {}
    kept: list[dict] = []
    dups: list[dict] = []
    for rec in records:
        first = exact.get(rec["_exact"])
        kind = "exact_duplicate"
        if first is None:
            first = near.get(rec["_near"])
            kind = "near_duplicate"
        if first is not None:
            dups.append({
                "path": rec["source_file"],
                "name": rec["original_name"],
                "tool_id": rec["tool_id"],
                "reason": kind,
                "duplicate_of": {"tool_id": first["tool_id"], "path": first["source_file"], "name": first["original_name"]},
            })
            continue
        exact[rec["_exact"]] = rec
        near[rec["_near"]] = rec
        kept.append(rec)
    return kept, dups


def _slug(rec: dict) -> str:
    text = rec.get("api_title") or rec.get("provider") or PurePosixPath(rec["source_file"]).stem
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug[:24].strip("_") or "api"


def assign_unique_names(records: list[dict]) -> int:
    """Make ``name`` unique in place (see module docstring); returns how many were renamed."""
    counts: dict[str, int] = {}
    for rec in records:
        key = rec["name"].lower()
        counts[key] = counts.get(key, 0) + 1
    taken: set[str] = set()
    first_seen: set[str] = set()
    losers: list[dict] = []
    for rec in records:
        key = rec["name"].lower()
        if key in first_seen:
            losers.append(rec)
        else:
            first_seen.add(key)
            taken.add(key)
    for rec in losers:
        for candidate in (with_suffix(rec["name"], _slug(rec)), with_suffix(rec["name"], rec["tool_id"][:8])):
            if candidate.lower() not in taken:
                break
        else:
            n = 2
            while candidate.lower() in taken:
                candidate = with_suffix(rec["name"], f"{rec['tool_id'][:8]}_{n}")
                n += 1
        taken.add(candidate.lower())
        rec["name"] = candidate
    return len(losers)
