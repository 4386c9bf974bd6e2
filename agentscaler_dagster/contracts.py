"""Contracts between pipeline stages (see DESIGN.md).

Field names may grow; they must not silently change. Every stage reads and
writes these models, so a stage can be rebuilt without knowing who wrote its
inputs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_serializer


def canonical_json(value: Any) -> str:
    """Sorted-key, compact JSON: the one serialisation that hashes are taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(value: Any) -> str:
    """sha256 of the canonical JSON of ``value`` (hex)."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


class EncodedTools(list):
    """An episode's tool list with its JSON kept: every model request of the episode sends the same tools, and
    a client splices ``encoded`` in instead of encoding them again per turn. Encoded on first use (a programmatic
    agent never needs it). Read-only by contract (the episode hands the same list to every turn)."""

    _encoded: bytes | None = None

    @property
    def encoded(self) -> bytes:
        """The tools as compact UTF-8 JSON."""
        if self._encoded is None:
            try:
                import orjson

                self._encoded = orjson.dumps(list(self))
            except (ImportError, TypeError):  # not installed, or what orjson refuses (integers over 64 bits)
                self._encoded = json.dumps(list(self), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return self._encoded

    # a copy is a plain list: a copy filled item by item would carry the JSON of an empty list
    def __copy__(self) -> list:
        return list(self)

    def __deepcopy__(self, memo) -> list:
        import copy

        return copy.deepcopy(list(self), memo)

    def __reduce__(self):
        return (EncodedTools, (list(self),))


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


class ScenarioFact(BaseModel):
    """Something the simulated user knows, in the user's words; ``hidden`` facts are told only when asked."""

    name: str = Field(description="What the fact is, in plain words (\"number of bags\", \"booking date\").")
    value: Any = Field(description="The value as the tools take it.")
    said: str = Field(description="The value as the user says it.")
    hidden: bool = False
    request: int = Field(default=0, description="Index of the request that first needs the fact.")


class ScenarioOutput(BaseModel):
    """A piece of information the user wants to be told."""

    name: str
    value: str


class ScenarioRequest(BaseModel):
    """One thing the user wants done or wants to know; requests with the same ``turn`` are asked together."""

    text: str = Field(description="The request as the user first says it.")
    kind: str = Field(description="Tool kind of the request's main action (get, update, transition, ...).")
    turn: int = 0
    outputs: list[ScenarioOutput] = Field(default_factory=list)
    forbidden: bool = Field(default=False, description="The domain policy forbids it: the right outcome is a refusal.")


class UserScenario(BaseModel):
    """A user in the tau-bench sense: a persona, a goal in plain language, what they know and what they reveal."""

    persona: str
    requests: list[ScenarioRequest]
    facts: list[ScenarioFact] = Field(default_factory=list)

    def goal(self) -> str:
        return " ".join(r.text for r in self.requests)


class GoldStep(BaseModel):
    """How a good agent reaches gold action ``action``: where each argument comes from, and what to say."""

    action: int
    request: int = Field(description="Index of the request the step serves.")
    role: Literal["lookup", "act"] = Field(description="lookup: finds what later steps need; act: what was asked.")
    sources: dict[str, str] = Field(default_factory=dict,
                                    description="Argument -> 'fact:<name>' (from the user) or 'output:<step>'.")
    confirm: bool = Field(default=False, description="The policy asks for the user's explicit yes before it.")
    describe: str = Field(default="", description="The action in plain words, as the agent says it.")
    attempt: GoldAction | None = Field(default=None, description="A refusal step: the call the policy forbids.")


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
    policy_rule: str | None = Field(default=None, description="The policy rule the request breaks (gold: no write).")
    expected_outputs: list[str] = Field(default_factory=list,
                                        description="What the agent must tell the user (the judge looks for each).")
    scenario: UserScenario | None = Field(default=None, description="The user's side: persona, requests, facts.")
    gold_steps: list[GoldStep] = Field(default_factory=list, description="The agent's side of each gold action.")
    confirm_tools: list[str] = Field(default_factory=list,
                                     description="Write tools the policy says need the user's explicit yes first.")
    prompt_tools: list[str] = Field(default_factory=list,
                                    description="The tools the agent is shown, by name, in the domain's order; "
                                                "empty: every tool of the domain.")


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
    tool_names: list[str] = Field(default_factory=list,
                                  description="The tools the agent was shown (the task's prompt_tools); empty: all.")


class SFTRecord(BaseModel):
    messages: list[dict]
    tools: list[dict]
    phase: Literal[1, 2]
    domain_id: str
    trajectory_id: str | None = None


# ---- environments (envgen writes these; tasks, rollouts and evaluation read them) -------------------------

ToolKind = Literal["create", "get", "list", "search", "update", "delete", "sub_add", "sub_remove", "transition",
                   "action", "other"]


class DependencyEdge(BaseModel):
    """A -> B in a domain's tool dependency graph: what ``source`` returns can fill ``target``'s inputs."""

    model_config = ConfigDict(extra="allow")

    source: str
    target: str
    field: str = Field(description="The main field that links the two tools.")
    fields: list[str] = Field(default_factory=list, description="Every field linked by name.")
    weight: float = 1.0
    match: Literal["name", "embedding"] = "name"
    sources: dict[str, str] = Field(default_factory=dict,
                                    description="Input parameter -> output field, for edges matched by similarity.")
    similarity: float | None = None

    def link_fields(self) -> set[str]:
        """The names a walk passes along this edge: the linked fields and the inputs they fill."""
        return set(self.fields) | {self.field} | set(self.sources)


class PolicyRule(BaseModel):
    """One rule of a domain policy; ``enforced_by`` names the tools that refuse a call breaking it."""

    rule_id: str
    kind: Literal["confirm", "verify", "transition", "availability", "funds", "refuse", "scope"]
    text: str
    tools: list[str] = Field(default_factory=list)
    enforced_by: list[str] = Field(default_factory=list, description="Tools that raise ToolError when it is broken.")


class Policy(BaseModel):
    """The policy document of an environment: what the agent may do, must confirm, must refuse."""

    domain_id: str
    generator: str = Field(default="programmatic", description="programmatic, or the LLM that wrote the text.")
    text: str = Field(description="Markdown shown in the agent's system prompt.")
    rules: list[PolicyRule] = Field(default_factory=list)


class EnvironmentManifest(BaseModel):
    """``manifest.json`` of an environment package (one folder per domain, see envgen/package.py)."""

    domain_id: str
    label: str
    seed: int
    envgen_version: str
    generator: str = Field(description="Which code generator wrote tools_module.py.")
    generator_attempts: list[dict] = Field(default_factory=list, description="Rejected attempts of a plug-in generator.")
    schema_source: str = Field(default="tools", description="tools (derived) or snapshot (bring your own).")
    n_tools: int
    n_collections: int
    n_states: int
    n_edges: int
    n_embedding_edges: int = Field(default=0, description="Edges linked only by name similarity (field_matcher).")
    edge_matcher: str = Field(default="name", description="name, or the embedder and thresholds of the field matcher.")
    n_starts: int
    pass_rate: float
    usable: bool
    semantic_valid: bool = Field(default=False, description="Every tool kept its kind's contract (semantics.py).")
    tool_kinds: dict[str, str] = Field(default_factory=dict, description="Tool name -> kind.")
    failed_properties: dict[str, list[str]] = Field(default_factory=dict, description="Tool -> properties it broke.")
    policy_file: str | None = Field(default=None, description="Relative path of the policy document (markdown).")
    skipped_tools: list[str] = Field(default_factory=list)
    files: dict[str, str] = Field(description="Relative path -> sha256 of the file's bytes.")
    content_hash: str = Field(description="Hash over the file hashes: the package's data version.")
    quarantined_tools: dict[str, str] = Field(
        default_factory=dict, description="Tool name -> why it was left out of the package (envgen's quarantine); "
                                          "the other fields describe the tools that remain.")
    package_dir: str | None = Field(default=None, exclude=True)

    @model_serializer(mode="wrap")
    def _omit_empty_quarantine(self, handler):
        # written only when there are any: a package that needed no quarantine keeps the bytes it had before
        data = handler(self)
        if isinstance(data, dict) and not data.get("quarantined_tools"):
            data.pop("quarantined_tools", None)
        return data


@runtime_checkable
class EnvironmentProtocol(Protocol):
    """What tasks, rollouts and evaluation use of an environment (``sandbox.Environment`` is the real one).

    State: ``initial_states`` and ``initial_state(id)`` (a private copy: the reset); tools: ``tools`` (OpenAI
    format), ``tool_specs`` and ``call``; the graph; the policy is read with ``tasks.environment.policy_of``
    (from the package, as long as the sandbox's Environment carries no ``policy`` attribute of its own).
    """

    domain_id: str
    tool_specs: Any
    schema: Any
    initial_states: dict[str, dict]

    @property
    def tools(self) -> list[dict]: ...

    @property
    def dependency_graph(self) -> Any: ...

    def call(self, state: dict, name: str, arguments: dict) -> Any: ...
