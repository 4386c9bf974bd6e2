"""Does what one tool returns feed another tool's input when the two name it differently?

The dependency graph links tools first by canonical field name and type. Real APIs name one thing
several ways (``contactid`` / ``contact_id``, ``app_id`` / ``application_id``, ``source_lang`` /
``source_language``), so a second matcher compares the *words* of the two names by the cosine
similarity of their embeddings. Similar names also mislead in known ways, so three guards come first:

- kind: an identifier only feeds an identifier, a value only a value;
- contrast: names that differ by a contrast word (start/end, from/to, parent/child, ...) never match,
  nor do names where only one side carries such a word (``start_lat`` is not ``lat``);
- head noun: ``device_tag_id`` is not a ``device_id``. The head is the last word before the id suffix,
  skipping verbs (``subscriptions_get_id`` -> subscription) and fillers (``domain_name`` -> domain); the
  heads must be equal or embed above ``head_threshold`` (0.15 less where one abbreviates the other), and
  an agent noun is not its verb's object (``rider_id`` is not a ``ride_id``). Leading words are roles and
  may differ (``accounts_adclient_id`` feeds ``adclient_id``), but not on both sides at once
  (``visitor_history`` is not ``location_history``), and not at all where the heads differ
  (``leave_application_id`` is not an ``app_id``).

The thresholds come from a labelled set of name pairs (``tests/test_envgen.py``) and the APIs-guru
subset, measured in benchmarks/RESULTS.md "Dependency edges by embedding similarity".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agentscaler_dagster.domains.embed import Embedder, split_words
from agentscaler_dagster.envgen.naming import singular

ID_SUFFIXES = frozenset({"id", "ids", "uuid", "key", "code", "number", "sid", "identifier", "arn", "guid"})
FILLERS = frozenset({"name", "address", "value", "text", "string", "info"})
# verbs that generated names carry after the entity (subscriptions_get_id); not "tag", "track", "log": nouns too
NAME_VERBS = frozenset({"get", "list", "create", "search", "lookup", "find", "fetch", "update", "delete", "add",
                        "remove", "set", "post", "put", "patch", "read", "show", "retrieve", "all"})
_CONTRASTS = (
    ("start", "end"), ("begin", "end"), ("from", "to"), ("min", "max"), ("minimum", "maximum"), ("first", "last"),
    ("parent", "child"), ("source", "target"), ("source", "destination"), ("origin", "destination"),
    ("departure", "arrival"), ("sender", "recipient"), ("sender", "receiver"), ("pickup", "dropoff"),
    ("old", "new"), ("before", "after"), ("lat", "lng"), ("lat", "lon"), ("latitude", "longitude"),
    ("in", "out"), ("input", "output"), ("buy", "sell"), ("upper", "lower"), ("open", "close"),
    ("north", "south"), ("east", "west"), ("ne", "sw"), ("home", "away"), ("debit", "credit"),
    ("incoming", "outgoing"), ("inbound", "outbound"), ("previous", "next"), ("prev", "next"), ("since", "until"),
)
CONTRAST_WORDS = frozenset(w for pair in _CONTRASTS for w in pair)
# real words that end in "id" and are not "<noun> id" run together
_ID_WORDS = frozenset({"paid", "valid", "invalid", "android", "avoid", "fluid", "rapid", "acid", "liquid", "hybrid",
                       "solid", "vivid", "candid", "humid", "pyramid", "orchid", "squid", "grid", "void", "raid",
                       "said", "laid", "maid", "aid", "bid", "kid", "lid", "mid", "rid", "did", "hid", "amid",
                       "druid", "david", "madrid", "cupid", "stupid", "timid", "tepid", "lucid", "morbid"})


def name_words(field: str) -> list[str]:
    """``contactID`` / ``contact-id`` / ``contactid`` -> ``['contact', 'id']``."""
    words: list[str] = []
    for word in split_words(field):
        for suffix in ("uuid", "id"):
            stem = word[: -len(suffix)]
            if word.endswith(suffix) and len(stem) >= 3 and word not in _ID_WORDS and not stem.endswith("uu"):
                words += [stem, suffix]
                break
        else:
            words.append(word)
    return words


@dataclass(frozen=True)
class FieldName:
    field: str
    words: tuple[str, ...]
    is_id: bool
    head: str
    modifiers: frozenset[str]
    contrast: frozenset[str]

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @classmethod
    def parse(cls, field: str) -> "FieldName":
        words = name_words(field)
        is_id = bool(words) and words[-1] in ID_SUFFIXES
        core = [singular(w) for w in (words[:-1] if is_id else words)]
        while len(core) > 1 and (core[-1] in FILLERS or core[-1] in NAME_VERBS):
            core = core[:-1]
        head = core[-1] if core else ""
        modifiers = frozenset(w for w in core[:-1] if w not in NAME_VERBS and w not in FILLERS and w != head)
        return cls(field=field, words=tuple(words), is_id=is_id, head=head, modifiers=modifiers,
                   contrast=frozenset(words) & CONTRAST_WORDS)


@dataclass(frozen=True)
class FieldMatch:
    score: float  # cosine similarity of the two names' words
    head_score: float


class FieldMatcher:
    """Scores (input field, output field) pairs; ``match`` returns None where the pair does not feed.

    ``threshold``: cosine similarity of the names' words; ``head_threshold``: of the head nouns where
    they differ. Embeddings are computed once per distinct text (``prepare`` batches them).
    """

    def __init__(self, embedder: Embedder, *, threshold: float = 0.8, head_threshold: float = 0.75):
        if not 0.0 < threshold <= 1.0 or not 0.0 < head_threshold <= 1.0:
            raise ValueError(f"FieldMatcher: thresholds must be in (0, 1], got {threshold}, {head_threshold}")
        self.embedder = embedder
        self.threshold = threshold
        self.head_threshold = head_threshold
        self._vectors: dict[str, np.ndarray] = {}
        self._names: dict[str, FieldName] = {}
        self._matches: dict[tuple[str, str], FieldMatch | None] = {}

    def _name(self, field: str) -> FieldName:
        name = self._names.get(field)
        if name is None:
            name = self._names[field] = FieldName.parse(field)
        return name

    @property
    def matcher_id(self) -> str:
        return f"{self.embedder.embedder_id}:t{self.threshold}:h{self.head_threshold}"

    def prepare(self, fields) -> None:
        texts = set()
        for field in fields:
            name = self._name(field)
            texts.update(t for t in (name.text, name.head) if t)
        missing = sorted(t for t in texts if t not in self._vectors)
        if missing:
            for text, vector in zip(missing, self.embedder.embed(missing)):
                self._vectors[text] = np.asarray(vector, dtype=np.float32)

    def match(self, wanted: str, offered: str) -> FieldMatch | None:
        """Whether ``offered`` (a field some tool returns) can fill ``wanted`` (a required input's field)."""
        key = (wanted, offered)
        if key not in self._matches:
            self._matches[key] = self._match(wanted, offered)
        return self._matches[key]

    def _match(self, wanted: str, offered: str) -> FieldMatch | None:
        a, b = self._name(wanted), self._name(offered)
        if not a.words or not b.words or a.is_id != b.is_id or a.contrast != b.contrast:
            return None
        if (a.modifiers - b.modifiers) and (b.modifiers - a.modifiers):
            return None
        if a.is_id and (not a.head or not b.head):
            return None  # a bare id names no entity: nothing to compare
        for text in (a.text, b.text, a.head, b.head):
            if text not in self._vectors:
                self.prepare([wanted, offered])
                break
        head_score = 1.0 if a.head == b.head else float(np.dot(self._vectors[a.head], self._vectors[b.head]))
        shorter, longer = sorted((a.head, b.head), key=len)
        if longer in (shorter + "r", shorter + "er", shorter + "or"):
            return None  # the one who does it is not the thing: rider / ride, charger / charge, user / use
        # app / application, lang / language (a longer cut than ride / rides)
        abbreviation = len(shorter) >= 3 and longer.startswith(shorter) and len(longer) - len(shorter) >= 3
        if head_score < (self.head_threshold - 0.15 if abbreviation else self.head_threshold):
            return None
        if a.head != b.head and a.modifiers != b.modifiers:
            return None  # a role word is safe to ignore only when the entity itself is named the same
        score = 1.0 if a.text == b.text else float(np.dot(self._vectors[a.text], self._vectors[b.text]))
        if score < self.threshold:
            return None
        return FieldMatch(score=round(score, 4), head_score=round(head_score, 4))

