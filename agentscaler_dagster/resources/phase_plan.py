from __future__ import annotations

import dagster as dg
from pydantic import Field

from agentscaler_dagster.phases import DEFAULT_VERTICAL_KEYWORDS, PhaseSplit, split_domains


class PhasePlan(dg.ConfigurableResource):
    """Which domains train phase 1 (general), phase 2 (vertical), and which are held out for evaluation."""

    held_out_fraction: float = Field(default=0.2, description="Share of domains kept out of training, for evaluation.")
    vertical_keywords: list[str] = Field(default=list(DEFAULT_VERTICAL_KEYWORDS), description="A domain whose label names one of these is vertical (phase 2).")
    seed: int = Field(default=0, description="Seed of the held-out choice.")

    def split(self, labels: dict[str, str]) -> PhaseSplit:
        return split_domains(labels, held_out_fraction=self.held_out_fraction, vertical_keywords=self.vertical_keywords, seed=self.seed)
