"""Which domains feed which SFT phase, and which are held out for evaluation.

The paper trains phase 1 on general domains and phase 2 on vertical domains, starting from the
phase-1 checkpoint, and evaluates on held-out tasks. It does not say which domains are "vertical":
here a domain is vertical when its label names one of the configured keywords (customer-service
verticals in the spirit of tau-bench: retail, airline, telecom ...). Held-out domains are chosen
by a seeded hash so that the split is stable when domains are added.

``split_by_service`` holds out whole APIs instead: a held-out domain's tools all come from held-out services
and no training domain has a tool of one, so a held-out score measures transfer to services never trained on.
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
    # split by service: the held-out services, and the domains that mix held-out and training services
    # (left out of both, so that no tool of a held-out service is ever trained on)
    held_out_services: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)

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
    general, vertical = _phases([d for d in ids if d not in held_out], labels, vertical_keywords)
    return PhaseSplit(general=general, vertical=vertical, held_out=held_out)


def _phases(ids: list[str], labels: dict[str, str], vertical_keywords) -> tuple[list[str], list[str]]:
    """Training domains into general (phase 1) and vertical (phase 2), each non-empty where possible."""
    keywords = [k.lower() for k in vertical_keywords]
    general, vertical = [], []
    for domain_id in ids:
        text = f"{domain_id} {labels[domain_id]}".lower()
        (vertical if any(k in text for k in keywords) else general).append(domain_id)
    # both phases need data: move the last-ranked domain across when one side is empty
    if not vertical and len(general) >= 2:
        vertical.append(general.pop())
    if not general and len(vertical) >= 2:
        general.append(vertical.pop(0))
    return general, vertical


def split_by_service(
    labels: dict[str, str],
    services: dict[str, set[str]],
    *,
    held_out_fraction: float = 0.2,
    vertical_keywords: tuple[str, ...] | list[str] = DEFAULT_VERTICAL_KEYWORDS,
    seed: int = 0,
) -> PhaseSplit:
    """Split ``{domain_id: label}`` holding out whole services (``services``: domain -> its tools' services).

    Services are taken in seeded-hash order until the domains made only of taken services reach
    ``held_out_fraction`` of all domains (at least one; at least one domain stays for training). Those domains
    are held out; a domain with tools of both held-out and other services is excluded from training and
    evaluation alike. The rest are split into general and vertical as ``split_domains`` does.
    """
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
    ids = sorted(labels)
    owned = {d: set(services.get(d) or {f"domain:{d}"}) for d in ids}
    target = int(round(len(ids) * held_out_fraction))
    target = min(max(target, 1), len(ids) - 1) if len(ids) >= 2 else 0
    held_services: set[str] = set()
    for service in sorted({s for v in owned.values() for s in v}, key=lambda s: _rank(s, seed)):
        if sum(owned[d] <= held_services for d in ids) >= target:
            break
        trial = held_services | {service}
        if all(owned[d] & trial for d in ids):
            continue  # it would leave nothing to train on
        held_services = trial
    held_out = [d for d in ids if target and owned[d] <= held_services]
    excluded = [d for d in ids if d not in held_out and owned[d] & held_services]
    general, vertical = _phases([d for d in ids if d not in held_out and d not in excluded], labels, vertical_keywords)
    return PhaseSplit(general=general, vertical=vertical, held_out=held_out,
                      held_out_services=sorted(held_services), excluded=excluded)
