"""Which domains feed which SFT phase, and which are held out for evaluation.

The paper trains phase 1 on general domains and phase 2 on vertical domains, starting from the
phase-1 checkpoint, and evaluates on held-out tasks. It does not say which domains are "vertical":
here a domain is vertical when its label names one of the configured keywords (customer-service
verticals in the spirit of tau-bench: retail, airline, telecom ...). Held-out domains are chosen
by a seeded hash so that the split is stable when domains are added.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

DEFAULT_VERTICAL_KEYWORDS = (
    "retail", "order", "airline", "flight", "telecom", "plan", "bank", "account", "booking", "reservation",
)


@dataclass(frozen=True)
class PhaseSplit:
    general: list[str] = field(default_factory=list)
    vertical: list[str] = field(default_factory=list)
    held_out: list[str] = field(default_factory=list)

    def phase_of(self, domain_id: str) -> int | None:
        if domain_id in self.general:
            return 1
        if domain_id in self.vertical:
            return 2
        return None


def _rank(domain_id: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{domain_id}".encode()).hexdigest()


def split_domains(
    labels: dict[str, str],
    *,
    held_out_fraction: float = 0.2,
    vertical_keywords: tuple[str, ...] | list[str] = DEFAULT_VERTICAL_KEYWORDS,
    seed: int = 0,
) -> PhaseSplit:
    """Split ``{domain_id: label}`` into general (phase 1), vertical (phase 2) and held-out domains.

    At least one domain is held out and at least one trains whenever there are two or more domains.
    """
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
    ids = sorted(labels)
    n_held = int(round(len(ids) * held_out_fraction))
    if len(ids) >= 2:
        n_held = min(max(n_held, 1), len(ids) - 1)
    else:
        n_held = 0
    held_out = sorted(sorted(ids, key=lambda d: _rank(d, seed))[:n_held])
    keywords = [k.lower() for k in vertical_keywords]
    general, vertical = [], []
    for domain_id in ids:
        if domain_id in held_out:
            continue
        text = f"{domain_id} {labels[domain_id]}".lower()
        (vertical if any(k in text for k in keywords) else general).append(domain_id)
    # both phases need data: move the last-ranked domain across when one side is empty
    if not vertical and len(general) >= 2:
        vertical.append(general.pop())
    if not general and len(vertical) >= 2:
        general.append(vertical.pop(0))
    return PhaseSplit(general=general, vertical=vertical, held_out=held_out)
