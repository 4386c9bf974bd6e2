from __future__ import annotations

import dagster as dg
from pydantic import Field

from agentscaler_dagster.phases import DEFAULT_VERTICAL_KEYWORDS, PhaseSplit, split_by_service, split_domains


class PhasePlan(dg.ConfigurableResource):
    """Which domains train phase 1 (general), phase 2 (vertical), and which are held out for evaluation."""

    held_out_fraction: float = Field(default=0.2, description="Share of domains kept out of training, for evaluation.")
    vertical_keywords: list[str] = Field(default=list(DEFAULT_VERTICAL_KEYWORDS), description="A domain whose label names one of these is vertical (phase 2).")
    seed: int = Field(default=0, description="Seed of the held-out choice.")
    hold_out_by: str = Field(default="service", description="service: hold out whole APIs (no tool of a held-out "
                             "service is trained on); domain: hold out domains (services may be shared).")

    def split(self, labels: dict[str, str], services: dict[str, set[str]] | None = None) -> PhaseSplit:
        """The split; ``services`` (domain -> the services of its tools) is needed for ``hold_out_by=service``."""
        if self.hold_out_by not in ("service", "domain"):
            raise ValueError(f"phase_plan.hold_out_by must be service or domain, got {self.hold_out_by!r}")
        if self.hold_out_by == "service" and services is not None:
            return split_by_service(labels, services, held_out_fraction=self.held_out_fraction,
                                    vertical_keywords=self.vertical_keywords, seed=self.seed)
        return split_domains(labels, held_out_fraction=self.held_out_fraction, vertical_keywords=self.vertical_keywords, seed=self.seed)
