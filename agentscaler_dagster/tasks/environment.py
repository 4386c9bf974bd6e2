"""The slice of an environment that task construction and rollouts rely on.

The contract is ``contracts.EnvironmentProtocol``; the real implementation is
``agentscaler_dagster.sandbox.Environment`` (generated tool code run in an isolated worker). Anything with
those attributes works, which keeps tasks and rollouts independent of how tools are executed. The policy
document is read from the package (``policy_of``) until the sandbox's Environment carries one itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from agentscaler_dagster.contracts import EnvironmentProtocol, Policy


@runtime_checkable
class ToolCallResultLike(Protocol):
    ok: bool
    output: Any
    error: str | None
    state: dict


# the environment contract lives in contracts.py; the old name stays for the stages that import it
EnvironmentLike = EnvironmentProtocol


def tool_specs_by_name(env: EnvironmentLike) -> dict[str, Any]:
    """``{name: spec}`` whether the environment keeps its specs as a list or a mapping."""
    specs = env.tool_specs
    items = specs.values() if isinstance(specs, dict) else specs
    return {spec.name: spec for spec in items}


def tool_names(env: EnvironmentLike) -> list[str]:
    return sorted(t["function"]["name"] for t in env.tools)


def policy_of(env: EnvironmentLike) -> Policy | None:
    """The environment's policy: its own ``policy`` attribute, else ``policy.json`` / ``policy.md`` in its package."""
    own = getattr(env, "policy", None)
    if isinstance(own, Policy):
        return own
    if isinstance(own, str) and own.strip():
        return Policy(domain_id=env.domain_id, generator="given", text=own.strip() + "\n")
    package_dir = getattr(env, "package_dir", None)
    if package_dir is None:
        return None
    package_dir = Path(package_dir)
    if (package_dir / "policy.json").is_file():
        return Policy.model_validate_json((package_dir / "policy.json").read_text("utf-8"))
    if (package_dir / "policy.md").is_file():
        return Policy(domain_id=env.domain_id, generator="file", text=(package_dir / "policy.md").read_text("utf-8"))
    return None


def domain_instructions(env: EnvironmentLike) -> str:
    """The system prompt of an episode: the environment's policy document when it has one."""
    policy = policy_of(env)
    if policy is not None and policy.text.strip():
        return policy.text.strip()
    names = ", ".join(tool_names(env))
    return (
        f"You are an agent serving users of the '{env.domain_id}' domain. "
        f"You can act only through the tools provided ({names}). "
        "Do exactly what the user asks, with the values the user gives, one step at a time; "
        "do not invent identifiers; report the results to the user and stop when they are done."
    )
