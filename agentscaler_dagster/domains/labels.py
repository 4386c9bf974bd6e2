"""Readable, unique domain labels and partition-key-safe domain ids.

A label names what a domain's tools act on, from what people wrote about them:

- **dominant API**: when one API title covers at least half of the domain's tools, the label starts with
  that title, shortened (``Gmail``, ``Amazon EC2``): people group tools by the service first.
- **nouns**: then the most characteristic words of the tools' names, HTTP path segments and API titles,
  counted once per tool and weighted by how specific they are to this domain (TF-IDF over domains), with
  read/write verbs, HTTP boilerplate and words already in the title left out.

Labels are unique across domains: a label that repeats an earlier (larger) domain's gets that domain's
next-best word, and a numeral only as the last resort. ``gmail-messages-drafts`` reads better than ``d07``.

A domain's **id** (its `domain` partition key) is made from the domain's own tools only, never from the rest
of the corpus: a readable head (the label this domain would get on its own) and a hash of its sorted tool ids,
``skylark-air-reservations-bookings-1f48bfc0``. Adding or removing an unrelated spec leaves it as it is; a
domain whose tools change is a new domain with a new id. The set-aside tools are always ``misc``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter

from agentscaler_dagster.contracts import ToolSpec
from agentscaler_dagster.corpus.normalise import READ_VERBS, WRITE_VERBS
from agentscaler_dagster.domains.embed import split_words

_LABEL_STOPWORDS = frozenset(
    """
    get list create update delete remove add set put post patch head options fetch retrieve read write find
    search query show view return returns by for of the a an and or to in on at from with all new my me
    id ids api apis v1 v2 v3 v4 v5 beta alpha service services rest http https json xml info details detail
    item items data resource resources object objects by_id one many batch bulk async sync
    com net org www io amazonaws googleapis azure microsoft projects locations
    """.split()
) | READ_VERBS | WRITE_VERBS
# words that make an API title long without telling it apart
_TITLE_NOISE = frozenset("api apis rest restful service services the for and of version com www net org".split())
_TITLE_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*|[0-9]+")
_ID_SAFE = re.compile(r"[^a-z0-9_-]+")
MAX_ID_LEN = 60
MISC_ID = "misc"
ID_HASH_LEN = 8
DOMINANT_SHARE = 0.5
MAX_TITLE_WORDS = 3


def tool_words(tool: ToolSpec) -> set[str]:
    """Candidate label words of one tool: its name, HTTP path segments and API title, as nouns."""
    words = set(split_words(tool.name))
    if tool.http is not None:
        words |= {w for seg in tool.http.path.split("/") if seg and not seg.startswith("{") for w in split_words(seg)}
    if tool.source.api_title:
        words |= set(split_words(tool.source.api_title))
    return {w for w in words if len(w) > 2 and not w.isdigit() and w not in _LABEL_STOPWORDS}


def short_title(title: str) -> list[str]:
    """An API title's telling words, at most three: ``Amazon EC2 Container Service API`` -> amazon, ec2, container.

    Brand names stay whole (``SureVoIP`` -> surevoip, not sure-vo-ip): titles are split at spaces and
    punctuation only.
    """
    words = [w.lower() for w in _TITLE_WORD.findall(title or "")]
    words = [w for w in words if len(w) > 1 and w not in _TITLE_NOISE and not re.fullmatch(r"v?\d+", w)]
    return words[:MAX_TITLE_WORDS]


def _repeats_title(word: str, head: list[str]) -> bool:
    """``adsensehost`` after ``adsense-host``, ``alertcenter`` after ``...-alert``: the title said it already."""
    joined = "".join(head)
    return bool(head) and (word in joined or any(len(h) > 2 and word.startswith(h) for h in head))


def _dominant_title(tools: list[ToolSpec]) -> list[str]:
    titles = Counter(t.source.api_title for t in tools if t.source.api_title)
    if not titles:
        return []
    title, count = min(titles.items(), key=lambda kv: (-kv[1], kv[0]))
    return short_title(title) if count >= DOMINANT_SHARE * len(tools) else []


def make_labels(groups: list[list[ToolSpec]], n_words: int = 3, *, reserved: frozenset[str] = frozenset()) -> list[str]:
    """One unique label per group (in order): the dominant API's short title, then nouns, joined by ``-``.

    ``reserved`` labels (``misc``) are never given to a group."""
    per_group: list[Counter[str]] = []
    doc_freq: Counter[str] = Counter()
    for tools in groups:
        counts: Counter[str] = Counter()
        for t in tools:
            counts.update(tool_words(t))
        per_group.append(counts)
        doc_freq.update(counts.keys())
    n_groups = max(1, len(groups))
    labels: list[str] = []
    taken: set[str] = set(reserved)
    for tools, counts in zip(groups, per_group):
        head = _dominant_title(tools)
        ranked = [w for w, _ in sorted(
            counts.items(),
            key=lambda kv: (-(kv[1] / max(1, len(tools))) * math.log(1 + n_groups / doc_freq[kv[0]]), kv[0]),
        ) if not _repeats_title(w, head)]
        want = max(1, n_words - len(head)) if head else n_words
        words = head + ranked[:want]
        label = "-".join(words) if words else "tools"
        # a repeat takes this domain's next-best words until it is unique; a numeral only when none is left
        extra = want
        while label in taken and extra < len(ranked):
            extra += 1
            label = "-".join(head + ranked[:extra])
        n = 2
        base = label
        while label in taken:
            label = f"{base}-{n}"
            n += 1
        taken.add(label)
        labels.append(label)
    return labels


def _slug(text: str) -> str:
    return _ID_SAFE.sub("-", text.lower()).strip("-") or "tools"


def domain_id(tools: list[ToolSpec], *, hash_len: int = ID_HASH_LEN) -> str:
    """``skylark-air-reservations-bookings-1f48bfc0``: a valid, stable partition key from the domain's own tools.

    The head is the label the tools would get as the only domain (no word weighed against other domains); the
    tail is the sha256 of the sorted tool ids. Lowercase [a-z0-9_-], at most 60 characters."""
    ids = sorted({t.tool_id for t in tools})
    tail = hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()[:hash_len]
    head = _slug(make_labels([tools])[0])[: MAX_ID_LEN - hash_len - 1].rstrip("-")
    return f"{head}-{tail}"


def domain_ids(groups: list[list[ToolSpec]], *, misc: int | None = None) -> list[str]:
    """One id per group (``domain_id``; the group at index ``misc`` is ``misc``), unique: a repeat (two groups
    with the same head and the same first 8 hex of their hash) takes a longer hash."""
    ids: list[str] = []
    for index, tools in enumerate(groups):
        if index == misc:
            ids.append(MISC_ID)
            continue
        for hash_len in (ID_HASH_LEN, 16, 32):
            key = domain_id(tools, hash_len=hash_len)
            if key not in ids:
                break
        else:
            raise ValueError(f"two domains have the same tools ({key}): groups must be disjoint")
        ids.append(key)
    return ids
