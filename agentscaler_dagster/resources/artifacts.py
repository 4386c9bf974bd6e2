from __future__ import annotations

import dagster as dg
from pydantic import Field

from agentscaler_dagster.artifacts import ArtifactLayout


class ArtifactStore(dg.ConfigurableResource):
    """The root folder under which every stage writes its files."""

    root: str = Field(default="artifacts", description="Artifact root; relative paths resolve against the working directory.")

    @property
    def layout(self) -> ArtifactLayout:
        return ArtifactLayout(self.root)
