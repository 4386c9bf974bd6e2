"""Contracts between pipeline stages (see DESIGN.md).

Field names may grow; they must not silently change. Every stage reads and
writes these models, so a stage can be rebuilt without knowing who wrote its
inputs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def canonical_json(value: Any) -> str:
    """Sorted-key, compact JSON: the one serialisation that hashes are taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(value: Any) -> str:
    """sha256 of the canonical JSON of ``value`` (hex)."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def state_hash(state: dict) -> str:
    """Canonical hash of an environment's database state."""
    return content_hash(state)


class ToolSource(BaseModel):
    model_config = ConfigDict(extra="allow")

    format: str = Field(description="Input format the tool was read from, e.g. openapi3, openai, mcp, toolbench, bfcl.")
    file: str = Field(description="Path of the input file, relative to the ingested root where possible.")
    api_title: str | None = Field(default=None, description="Title of the API (spec) the tool belongs to.")
    provider: str | None = Field(default=None, description="Provider / vendor of the API.")
    categories: list[str] = Field(default_factory=list, description="The source's own category labels.")
    original_name: str | None = Field(default=None, description="Name before normalisation, when it changed.")


class HttpBinding(BaseModel):
    method: str
    path: str


class ToolSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    tool_id: str = Field(description="Stable id: hash of source and original name.")
    name: str = Field(description="Valid, unique function name.")
    description: str
    parameters: dict = Field(description="JSON Schema object of the arguments.")
    returns: dict | None = Field(default=None, description="JSON Schema of the result, when known.")
    operation: Literal["read", "write"]
    source: ToolSource
    http: HttpBinding | None = None

    def openai_tool(self) -> dict:
        """The tool in OpenAI `tools` format."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class Domain(BaseModel):
    domain_id: str = Field(description="Stable id, valid as a Dagster partition key.")
    label: str = Field(description="Readable label made from the domain's tools.")
    tool_ids: list[str]


class GoldAction(BaseModel):
    name: str
    arguments: dict


class Task(BaseModel):
    task_id: str
    domain_id: str
    user_intent: str
    initial_state_id: str = Field(description="Which initial state of the environment the task starts from.")
    initial_state_hash: str
    gold_actions: list[GoldAction]
    gold_state_hash: str
    read_only: bool
    gold_outputs: list[Any] = Field(default_factory=list, description="What each gold action returned.")


class Trajectory(BaseModel):
    model_config = ConfigDict(extra="allow")

    trajectory_id: str
    task_id: str
    domain_id: str
    trial: int
    messages: list[dict] = Field(description="OpenAI chat format: system, user, assistant (tool_calls), tool.")
    final_state_hash: str
    termination: str = Field(description="user_stop | max_turns | agent_error | user_error | setup_error | backend_error")
    backend: str
    sampling: dict = Field(default_factory=dict)
    timings: dict = Field(default_factory=dict)
    error: str | None = None


class SFTRecord(BaseModel):
    messages: list[dict]
    tools: list[dict]
    phase: Literal[1, 2]
    domain_id: str
    trajectory_id: str | None = None
