"""The slice of an environment that task construction and rollouts rely on.

The real implementation is ``agentscaler_dagster.sandbox.Environment`` (generated tool code run in an
isolated worker); anything with these attributes works, which keeps tasks and rollouts independent
of how tools are executed.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ToolCallResultLike(Protocol):
    ok: bool
    output: Any
    error: str | None
    state: dict


@runtime_checkable
class EnvironmentLike(Protocol):
    domain_id: str
    tools: list[dict]
    tool_specs: Any
    schema: Any
    dependency_graph: Any
    initial_states: dict[str, dict]

    def call(self, state: dict, name: str, arguments: dict) -> ToolCallResultLike:
        """Run tool ``name``; return the new state (the old one, unchanged, when the call fails)."""
        ...


def tool_specs_by_name(env: EnvironmentLike) -> dict[str, Any]:
    """``{name: spec}`` whether the environment keeps its specs as a list or a mapping."""
    specs = env.tool_specs
    items = specs.values() if isinstance(specs, dict) else specs
    return {spec.name: spec for spec in items}


def tool_names(env: EnvironmentLike) -> list[str]:
    return sorted(t["function"]["name"] for t in env.tools)


def domain_instructions(env: EnvironmentLike) -> str:
    """The system prompt of an episode: the environment's own policy when it has one."""
    for attr in ("policy", "instructions", "system_prompt"):
        text = getattr(env, attr, None)
        if isinstance(text, str) and text.strip():
            return text.strip()
    names = ", ".join(tool_names(env))
    return (
        f"You are an agent serving users of the '{env.domain_id}' domain. "
        f"You can act only through the tools provided ({names}). "
        "Do exactly what the user asks, with the values the user gives, one step at a time; "
        "do not invent identifiers; report the results to the user and stop when they are done."
    )
