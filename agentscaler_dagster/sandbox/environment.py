"""A domain's environment, served from its package folder through the sandbox runtime.

``Environment.call(state, name, arguments)`` is the one way tools run: it validates the arguments
against the tool's JSON Schema (an error the agent can act on), runs the tool in the isolated worker on a
private copy of the state, and returns the new state on success or the given state, untouched, on failure.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentscaler_dagster.artifacts import verify_package
from agentscaler_dagster.contracts import Policy, ToolSpec, state_hash
from agentscaler_dagster.sandbox.argcheck import check_arguments
from agentscaler_dagster.sandbox.runtime import Limits, ModuleRejected, RawResult, Runtime

__all__ = ["Environment", "ToolCallResult", "Session", "state_hash", "copy_state"]


@dataclass
class ToolCallResult:
    ok: bool
    output: Any
    error: str | None
    state: dict
    killed: bool = False

    def observation(self) -> str:
        """What the agent reads as the tool message."""
        if self.ok:
            return self.output if isinstance(self.output, str) else json.dumps(self.output, sort_keys=True)
        return self.error or "Error: the call failed"

    def to_dict(self) -> dict:
        return {"ok": self.ok, "output": self.output, "error": self.error, "state": self.state}


def copy_state(state: dict) -> dict:
    """A private copy of a JSON state (cheap reset for walks and rollouts)."""
    return copy.deepcopy(state)


def _graph_from_json(data: dict):
    import networkx as nx

    graph = nx.DiGraph()
    for node in data.get("nodes", []):
        attrs = {k: v for k, v in node.items() if k != "name"}
        graph.add_node(node["name"], **attrs)
    for edge in data.get("edges", []):
        attrs = {k: v for k, v in edge.items() if k not in ("source", "target")}
        graph.add_edge(edge["source"], edge["target"], **attrs)
    return graph


@dataclass
class Environment:
    domain_id: str
    tool_specs: list[ToolSpec]
    source: str
    schema: dict = field(default_factory=dict)
    initial_states: dict[str, dict] = field(default_factory=dict)
    dependency_graph_data: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    package_dir: Path | None = None
    runtime: Runtime | None = None
    limits: Limits | None = None
    policy: Policy | None = None  # the agent's policy document (policy.json of the package)

    def __post_init__(self) -> None:
        self._owns_runtime = self.runtime is None
        if self.runtime is None:
            self.runtime = Runtime(self.limits)
        # raises ModuleRejected with the static check's reasons
        self.module_id = self.runtime.register(self.source)
        self._specs = {spec.name: spec for spec in self.tool_specs}
        self._graph = None

    # --- loading -------------------------------------------------------------------------------------
    @classmethod
    def load(cls, package_dir: str | Path, *, runtime: Runtime | None = None,
             limits: Limits | None = None) -> "Environment":
        package_dir = Path(package_dir)
        if not (package_dir / "tools_module.py").is_file():
            raise FileNotFoundError(f"{package_dir} is not an environment package: tools_module.py is missing")

        def read_json(name: str, default: Any) -> Any:
            path = package_dir / name
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else default

        # every file against the sha256 the manifest records, before any of it is read or run: a tools_module.py
        # cut short would otherwise serve the tools that survived
        manifest = verify_package(package_dir)
        specs_raw = read_json("tool_specs.json", None)
        if specs_raw is None:
            raise FileNotFoundError(f"{package_dir}: tool_specs.json is missing")
        states = {}
        states_dir = package_dir / "states"
        if states_dir.is_dir():
            for path in sorted(states_dir.glob("*.json")):
                states[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            domain_id=manifest.get("domain_id") or read_json("schema.json", {}).get("domain_id") or package_dir.name,
            tool_specs=[ToolSpec.model_validate(s) for s in specs_raw],
            source=(package_dir / "tools_module.py").read_text(encoding="utf-8"),
            schema=read_json("schema.json", {}),
            initial_states=states,
            dependency_graph_data=read_json("dependency_graph.json", {}),
            manifest=manifest,
            package_dir=package_dir,
            runtime=runtime,
            limits=limits,
            policy=Policy.model_validate(read_json("policy.json", None)) if (package_dir / "policy.json").is_file()
            else None,
        )

    # --- views ---------------------------------------------------------------------------------------
    @property
    def tools(self) -> list[dict]:
        """The tools in OpenAI format."""
        return [spec.openai_tool() for spec in self.tool_specs]

    @property
    def tool_names(self) -> list[str]:
        return [spec.name for spec in self.tool_specs]

    @property
    def dependency_graph(self):
        """The tool dependency graph as a networkx DiGraph (edge attribute ``field`` links the tools)."""
        if self._graph is None:
            self._graph = _graph_from_json(self.dependency_graph_data)
        return self._graph

    def initial_state(self, state_id: str | None = None) -> dict:
        """A private copy of an initial state (the first one when no id is given)."""
        if not self.initial_states:
            raise KeyError(f"environment {self.domain_id} has no initial states")
        if state_id is None:
            state_id = sorted(self.initial_states)[0]
        if state_id not in self.initial_states:
            raise KeyError(f"initial state '{state_id}' not found; available: {', '.join(sorted(self.initial_states))}")
        return copy_state(self.initial_states[state_id])

    # --- calls ---------------------------------------------------------------------------------------
    def call(self, state: dict, name: str, arguments: dict | None = None) -> ToolCallResult:
        refused, arguments = self._precheck(state, name, arguments)
        if refused is not None:
            return refused
        return self._result(self.runtime.call(self.module_id, name, arguments, state), state)

    async def acall(self, state: dict, name: str, arguments: dict | None = None) -> ToolCallResult:
        """``call`` for asyncio: many episodes' calls can wait on the sandbox from one event loop."""
        refused, arguments = self._precheck(state, name, arguments)
        if refused is not None:
            return refused
        return self._result(await self.runtime.acall(self.module_id, name, arguments, state), state)

    def _precheck(self, state: dict, name: str, arguments: dict | None) -> tuple[ToolCallResult | None, dict]:
        """The refusal of a call that never reaches the sandbox (or None), and the arguments to send."""
        spec = self._specs.get(name)
        if spec is None:
            available = ", ".join(sorted(self._specs))
            return ToolCallResult(False, None, f"Error: tool '{name}' not found; available tools: {available}",
                                  state), {}
        arguments = {} if arguments is None else arguments
        problem = check_arguments(name, spec.parameters, arguments)
        if problem:
            return ToolCallResult(False, None, problem, state), arguments
        return None, arguments

    @staticmethod
    def _result(raw: RawResult, state: dict) -> ToolCallResult:
        if raw.ok:
            return ToolCallResult(True, raw.output, None, raw.state)
        error = raw.error or "the call failed"
        if not raw.killed and not error.startswith("Error:"):
            error = f"Error: {error}"
        return ToolCallResult(False, None, error, state, killed=raw.killed)

    def session(self, state: dict | str | None = None) -> "Session":
        """A stateful handle: each call starts from the state the previous call left."""
        if state is None or isinstance(state, str):
            state = self.initial_state(state)
        return Session(self, state)

    def warm(self) -> None:
        """Start the sandbox worker now (it starts on the first call otherwise): an engine that runs hundreds of
        episodes on one event loop would wait on that start, all episodes at once."""
        self.runtime.ping(self.module_id)

    def close(self) -> None:
        if self._owns_runtime and self.runtime is not None:
            self.runtime.close()

    def __enter__(self) -> "Environment":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Session:
    """Walks and rollouts: the environment plus a current state, one call after another.

    The state stays in the sandbox worker between calls: a call ships only the tool and its arguments,
    and the worker sends the state back only when it changed (kept as text; parsed when ``state`` is read).
    If the worker is replaced, the next call seeds the new one from the last committed state.
    """

    _counter = 0

    def __init__(self, env: Environment, state: dict):
        Session._counter += 1
        self.env = env
        self.sid = f"s{id(self):x}-{Session._counter}"
        self._text = json.dumps(state, separators=(",", ":"), ensure_ascii=False)
        self._state: dict | None = state
        self.history: list[dict] = []

    @property
    def state(self) -> dict:
        if self._state is None:
            self._state = json.loads(self._text)
        return self._state

    @property
    def state_hash(self) -> str:
        return state_hash(self.state)

    def call(self, name: str, arguments: dict | None = None) -> ToolCallResult:
        env = self.env
        arguments = {} if arguments is None else arguments
        spec = env._specs.get(name)
        if spec is None:
            result = env.call(self.state, name, arguments)  # the same "not found" message
        elif (problem := check_arguments(name, spec.parameters, arguments)) is not None:
            result = ToolCallResult(False, None, problem, self.state)
        else:
            raw = env.runtime.session_call(env.module_id, self.sid, name, arguments, self._text)
            if raw.ok:
                if raw.state_text is not None:
                    self._text, self._state = raw.state_text, None
                result = _LazyResult(True, raw.output, None, self)
            else:
                error = raw.error or "the call failed"
                if not raw.killed and not error.startswith("Error:"):
                    error = f"Error: {error}"
                result = _LazyResult(False, None, error, self, killed=raw.killed)
        self.history.append({"name": name, "arguments": arguments, "ok": result.ok})
        return result


class _LazyResult(ToolCallResult):
    """A session call's result: ``state`` is parsed only when someone reads it."""

    def __init__(self, ok: bool, output: Any, error: str | None, session: Session, killed: bool = False):
        self.ok, self.output, self.error, self.killed = ok, output, error, killed
        self._session, self._text = session, session._text

    @property
    def state(self) -> dict:  # type: ignore[override]
        if self._session._text is self._text:
            return self._session.state
        return json.loads(self._text)


def load_rejected_reasons(exc: Exception) -> list[str]:
    return exc.problems if isinstance(exc, ModuleRejected) else [str(exc)]
