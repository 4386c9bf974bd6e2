"""The user-agent episode loop (paper, step 5; tau-bench style) and its files.

The environment state is threaded through ``env.call`` from the task's initial state; a tool
error, a malformed call or an unknown tool becomes an ``Error: ...`` tool message that the agent
reads (an observation, not a crash). An exception from the agent or the user (a simulator bug, a
model backend that gave up) ends the episode and is recorded in the trajectory, never raised.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Callable, Iterable

from agentscaler_dagster.artifacts import read_model_jsonl
from agentscaler_dagster.contracts import Task, Trajectory, canonical_json, content_hash, state_hash
from agentscaler_dagster.rollout.protocols import AgentPolicy, UserSimulator
from agentscaler_dagster.rollout.simulators import STOP_MARKER
from agentscaler_dagster.tasks.environment import EnvironmentLike, domain_instructions, tool_names

TERMINATIONS = ("user_stop", "max_turns", "agent_error", "user_error", "setup_error")


class AgentOutputError(ValueError):
    """The agent returned something that is not an assistant message."""


def run_episode(
    task: Task,
    env: EnvironmentLike,
    agent: AgentPolicy,
    user: UserSimulator,
    *,
    trial: int,
    max_turns: int = 20,
    system_prompt: str | None = None,
) -> Trajectory:
    """Play one episode of ``task``; ``max_turns`` bounds the agent's messages.

    Raises ``ValueError`` only when the task does not belong to ``env`` (a framework misuse).
    """
    if task.initial_state_id not in env.initial_states:
        raise ValueError(
            f"task {task.task_id}: initial state '{task.initial_state_id}' not in environment "
            f"'{env.domain_id}' (has: {', '.join(sorted(env.initial_states))})"
        )
    state = env.initial_states[task.initial_state_id]
    if state_hash(state) != task.initial_state_hash:
        raise ValueError(
            f"task {task.task_id}: initial state '{task.initial_state_id}' of environment '{env.domain_id}' "
            "has changed since the task was built (hash differs); rebuild the tasks"
        )
    state = copy.deepcopy(state)
    tools = env.tools
    known = set(tool_names(env))
    messages: list[dict] = [{"role": "system", "content": system_prompt or domain_instructions(env)}]
    steps: list[dict] = []
    termination, error = None, None
    started = time.perf_counter()

    def timed(kind: str, fn, *args):
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            steps.append({"kind": kind, "s": round(time.perf_counter() - t0, 6)})

    bind = getattr(user, "bind_task", None)
    try:
        if callable(bind):
            bind(task)
        first = timed("user", user.start, task.user_intent)
        if not isinstance(first, str) or not first.strip():
            raise ValueError(f"user simulator gave no first message (got {first!r})")
    except Exception as exc:  # noqa: BLE001 - recorded in the trajectory
        return _trajectory(task, env, agent, user, trial, messages, state, "user_error", _describe(exc), started, steps)
    messages.append({"role": "user", "content": first})

    agent_turns = 0
    while termination is None:
        if agent_turns >= max_turns:
            termination = "max_turns"
            break
        try:
            reply = timed("agent", agent.act, copy.deepcopy(messages), tools)
            assistant = _normalise_assistant(reply, agent_turns)
        except Exception as exc:  # noqa: BLE001 - recorded in the trajectory
            termination, error = "agent_error", _describe(exc)
            break
        agent_turns += 1
        messages.append(assistant)
        if assistant.get("tool_calls"):
            for tool_call in assistant["tool_calls"]:
                content, state = timed("tool", _execute, env, known, state, tool_call)
                messages.append(
                    {"role": "tool", "tool_call_id": tool_call["id"], "name": tool_call["function"]["name"], "content": content}
                )
            continue
        try:
            answer = timed("user", user.reply, copy.deepcopy(messages))
        except Exception as exc:  # noqa: BLE001 - recorded in the trajectory
            termination, error = "user_error", _describe(exc)
            break
        if answer is None:
            termination = "user_stop"
            break
        messages.append({"role": "user", "content": str(answer)})
        if STOP_MARKER in str(answer):
            termination = "user_stop"
    return _trajectory(task, env, agent, user, trial, messages, state, termination, error, started, steps)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _normalise_assistant(reply, turn: int) -> dict:
    """The agent's message in canonical OpenAI form; anything unusable raises AgentOutputError."""
    if not isinstance(reply, dict):
        raise AgentOutputError(f"agent returned {type(reply).__name__}, expected an assistant message dict")
    role = reply.get("role", "assistant")
    if role != "assistant":
        raise AgentOutputError(f"agent returned a message with role '{role}', expected 'assistant'")
    content = reply.get("content")
    if content is not None and not isinstance(content, str):
        raise AgentOutputError(f"assistant content must be a string or null, got {type(content).__name__}")
    raw_calls = reply.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise AgentOutputError(f"assistant tool_calls must be a list, got {type(raw_calls).__name__}")
    calls = []
    for i, tc in enumerate(raw_calls):
        function = tc.get("function") if isinstance(tc, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise AgentOutputError(f"tool call {i} has no function name: {tc!r}")
        arguments = function.get("arguments", "{}")
        if not isinstance(arguments, str):
            # some backends hand back parsed arguments; the chat format carries JSON text
            arguments = json.dumps(arguments, sort_keys=True, ensure_ascii=False)
        call_id = str(tc.get("id") or f"call_t{turn}_{i}")
        if any(c["id"] == call_id for c in calls):
            # the tool messages must be able to say which call they answer
            call_id = f"{call_id}_{i}"
        calls.append(
            {
                "id": call_id,
                "type": "function",
                "function": {"name": function["name"], "arguments": arguments},
            }
        )
    if not calls and not (content or "").strip():
        raise AgentOutputError("agent returned an empty assistant message (no content, no tool calls)")
    message: dict = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    if isinstance(reply.get("reasoning_content"), str):
        message["reasoning_content"] = reply["reasoning_content"]
    return message


def _execute(env: EnvironmentLike, known: set[str], state: dict, tool_call: dict) -> tuple[str, dict]:
    name = tool_call["function"]["name"]
    raw = tool_call["function"]["arguments"]
    try:
        arguments = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        return f"Error: arguments of {name} are not valid JSON ({exc.msg} at position {exc.pos})", state
    if not isinstance(arguments, dict):
        return f"Error: arguments of {name} must be a JSON object, got {type(arguments).__name__}", state
    if name not in known:
        return f"Error: unknown tool '{name}'; available: {', '.join(sorted(known))}", state
    try:
        result = env.call(state, name, arguments)
    except Exception as exc:  # noqa: BLE001 - the runtime failed; the agent sees it as an observation
        return f"Error: {name} failed to run ({_describe(exc)})", state
    if not result.ok:
        error = str(result.error or "the call failed")
        return (error if error.startswith("Error") else f"Error: {error}"), state
    return json.dumps(result.output, sort_keys=True, ensure_ascii=False, default=str), result.state


def trajectory_id(task_id: str, trial: int, agent_name: str, user_name: str) -> str:
    return "tr-" + content_hash({"task_id": task_id, "trial": trial, "agent": agent_name, "user": user_name})[:16]


def _trajectory(task, env, agent, user, trial, messages, state, termination, error, started, steps) -> Trajectory:
    agent_name = getattr(agent, "name", type(agent).__name__)
    user_name = getattr(user, "name", type(user).__name__)
    sampling = dict(getattr(agent, "sampling", None) or {})
    extra = {}
    mistakes = getattr(agent, "mistakes", None)
    if isinstance(mistakes, list):
        # ground truth of the programmatic agent's injected mistakes: lets the funnel be checked
        extra["agent_mistakes"] = list(mistakes)
    return Trajectory(
        trajectory_id=trajectory_id(task.task_id, trial, agent_name, user_name),
        task_id=task.task_id,
        domain_id=task.domain_id,
        trial=trial,
        messages=messages,
        final_state_hash=state_hash(state),
        termination=termination,
        backend=agent_name,
        sampling=sampling,
        timings={"total_s": round(time.perf_counter() - started, 6), "steps": steps},
        error=error,
        user_simulator=user_name,
        **extra,
    )


def episode_seed(seed: int, task_id: str, trial: int) -> int:
    """The seed of one (task, trial): independent of which other tasks are rolled out."""
    return int(content_hash({"seed": seed, "task_id": task_id, "trial": trial})[:8], 16)


def run_rollouts(
    tasks: Iterable[Task],
    env: EnvironmentLike,
    agent_factory: Callable[[int], AgentPolicy],
    user_factory: Callable[[int], UserSimulator],
    *,
    trials: int,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
    max_turns: int = 20,
    system_prompt: str | None = None,
) -> list[Trajectory]:
    """``trials`` episodes per task, each with fresh simulators seeded per (task, trial).

    A task that does not fit ``env`` gives a ``setup_error`` trajectory (the filters reject it)
    instead of stopping the other tasks.
    """
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    tasks = list(tasks)
    total = len(tasks) * trials
    out: list[Trajectory] = []
    for task in tasks:
        for trial in range(trials):
            s = episode_seed(seed, task.task_id, trial)
            agent, user = agent_factory(s), user_factory(s)
            try:
                out.append(run_episode(task, env, agent, user, trial=trial, max_turns=max_turns, system_prompt=system_prompt))
            except ValueError as exc:
                out.append(
                    Trajectory(
                        trajectory_id=trajectory_id(task.task_id, trial, getattr(agent, "name", "?"), getattr(user, "name", "?")),
                        task_id=task.task_id,
                        domain_id=task.domain_id,
                        trial=trial,
                        messages=[],
                        final_state_hash="",
                        termination="setup_error",
                        backend=getattr(agent, "name", "?"),
                        error=str(exc),
                    )
                )
            if progress is not None:
                progress(len(out), total)
    return out


def write_trajectories(trajectories: Iterable[Trajectory], path: str | Path, *, timings: bool = True) -> Path:
    """JSONL with sorted keys. ``timings=False`` drops the one field that is not deterministic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for t in trajectories:
            data = t.model_dump(mode="json")
            if not timings:
                data["timings"] = {}
            fh.write(canonical_json(data) + "\n")
    return path


def read_trajectories(path: str | Path) -> list[Trajectory]:
    return read_model_jsonl(path, Trajectory, "a valid trajectory")
