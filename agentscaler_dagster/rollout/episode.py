"""The user-agent episode loop (paper, step 5; tau-bench style) and its files.

The environment state is threaded through ``env.call`` from the task's initial state; a tool
error, a malformed call or an unknown tool becomes an ``Error: ...`` tool message that the agent
reads (an observation, not a crash). An exception from the agent or the user (a simulator bug, a
model backend that gave up) ends the episode and is recorded in the trajectory, never raised.
"""

from __future__ import annotations

import copy
import json
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

from agentscaler_dagster.artifacts import mark_unfinished, read_model_jsonl, write_jsonl
from agentscaler_dagster.contracts import Task, Trajectory, canonical_json, content_hash, state_hash
from agentscaler_dagster.rollout.protocols import AgentPolicy, UserSimulator
from agentscaler_dagster.rollout.simulators import STOP_MARKER
from agentscaler_dagster.tasks.environment import EnvironmentLike, domain_instructions

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
    if task.prompt_tools:
        shown = set(task.prompt_tools)
        tools = [t for t in tools if t["function"]["name"] in shown]
    known = {t["function"]["name"] for t in tools}
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
    bind_agent = getattr(agent, "bind_task", None)
    try:
        if callable(bind_agent):
            bind_agent(task)  # an oracle simulator knows the task's gold steps; a model never does
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
        tool_names=list(task.prompt_tools),
        user_simulator=user_name,
        **extra,
    )


def episode_seed(seed: int, task_id: str, trial: int) -> int:
    """The seed of one (task, trial): independent of which other tasks are rolled out."""
    return int(content_hash({"seed": seed, "task_id": task_id, "trial": trial})[:8], 16)


def _setup_error(task: Task, trial: int, agent, user, exc: Exception) -> Trajectory:
    return Trajectory(
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


class EnvironmentPool:
    """Loaded copies of one environment behind the one-environment interface.

    A tool call takes whichever copy is free: the state travels with the call, so any copy can run it,
    and concurrent episodes are not queued behind one sandbox worker.
    """

    def __init__(self, copies: list):
        if not copies:
            raise ValueError("EnvironmentPool needs at least one loaded environment")
        ids = {getattr(c, "domain_id", None) for c in copies}
        if len(ids) != 1:
            raise ValueError(f"EnvironmentPool copies must be of one environment, got domains {sorted(map(str, ids))}")
        self._copies = copies
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for c in copies:
            self._free.put(c)

    def __getattr__(self, name: str):
        # tools, schema, initial states, policy ...: the same in every copy
        return getattr(self._copies[0], name)

    def call(self, state: dict, name: str, arguments: dict):
        copy_ = self._free.get()
        try:
            return copy_.call(state, name, arguments)
        finally:
            self._free.put(copy_)


def backend_failed(trajectory: Trajectory) -> bool:
    """The episode ended because the model server failed (down, killed, timing out), not by the model's doing.

    A request the server refused (HTTP 4xx: a prompt too long, a bad parameter) would fail again: not retried.
    """
    return trajectory.termination in ("agent_error", "user_error") and is_backend_failure(trajectory.error)


def is_backend_failure(error: str | None) -> bool:
    """An error text that says the model server failed (worth playing again), not that it refused."""
    error = error or ""
    return error.startswith("BackendError") and "refused the request" not in error


def run_rollouts(
    tasks: Iterable[Task],
    env: EnvironmentLike | list[EnvironmentLike],
    agent_factory: Callable[[int], AgentPolicy],
    user_factory: Callable[[int], UserSimulator],
    *,
    trials: int,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
    max_turns: int = 20,
    system_prompt: str | None = None,
    concurrency: int = 1,
    out_path: str | Path | None = None,
    backend_retries: int = 2,
) -> list[Trajectory]:
    """``trials`` episodes per task, each with fresh simulators seeded per (task, trial).

    Up to ``concurrency`` episodes run at once (threads: the model calls wait on the network, and the
    sandbox serialises tool calls itself). ``env`` may be a list of loaded copies of one environment (one
    sandbox worker each): each tool call takes whichever copy is free (see ``EnvironmentPool``). A task
    that does not fit ``env`` gives a ``setup_error`` trajectory (the filters reject it) instead of
    stopping the other tasks. An episode that ended
    because the model server failed is played again, up to ``backend_retries`` times, and is kept with
    its error after that.

    With ``out_path`` (JSONL), each finished episode is appended at once, and a run that was
    interrupted resumes: episodes already in the file - keyed by (task, trial) - are kept, not replayed,
    except those that ended by a server failure, which are played again. The result is in task order,
    whatever the concurrency.
    """
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    tasks = list(tasks)
    if isinstance(env, (list, tuple)):
        env = EnvironmentPool(list(env)) if len(env) != 1 else env[0]
    order = {(task.task_id, trial): i for i, (task, trial) in enumerate((t, k) for t in tasks for k in range(trials))}
    total = len(order)
    done: dict[tuple[str, int], Trajectory] = {}
    sink = None
    if out_path is not None:
        done = {k: v for k, v in _resume(Path(out_path)).items() if k in order and not backend_failed(v)}
        mark_unfinished(Path(out_path))  # read_trajectories refuses the file until write_trajectories seals it
        _rewrite(Path(out_path), sorted(done.values(), key=lambda t: order[(t.task_id, t.trial)]))
        sink = Path(out_path).open("a", encoding="utf-8")
    lock = threading.Lock()
    finished = [len(done)]

    def play(task: Task, trial: int) -> Trajectory:
        s = episode_seed(seed, task.task_id, trial)
        for attempt in range(backend_retries + 1):
            agent, user = agent_factory(s), user_factory(s)
            try:
                trajectory = run_episode(task, env, agent, user, trial=trial, max_turns=max_turns, system_prompt=system_prompt)
            except ValueError as exc:
                trajectory = _setup_error(task, trial, agent, user, exc)
            if not backend_failed(trajectory):
                break
        if attempt:
            trajectory.timings["backend_attempts"] = attempt + 1
        with lock:
            if sink is not None:
                sink.write(canonical_json(trajectory.model_dump(mode="json")) + "\n")
                sink.flush()  # written at once: a killed run keeps every finished episode
            finished[0] += 1
            if progress is not None:
                progress(finished[0], total)
        return trajectory

    todo = [(task, trial) for task in tasks for trial in range(trials) if (task.task_id, trial) not in done]
    try:
        if concurrency == 1:
            results = [play(task, trial) for task, trial in todo]
        else:
            with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="episode") as pool:
                results = list(pool.map(lambda pair: play(*pair), todo))
    finally:
        if sink is not None:
            sink.close()
    for trajectory in results:
        done[(trajectory.task_id, trajectory.trial)] = trajectory
    return sorted(done.values(), key=lambda t: order[(t.task_id, t.trial)])


def _resume(path: Path) -> dict[tuple[str, int], Trajectory]:
    """Finished episodes of an earlier run; a line cut short by a kill is dropped (it is played again)."""
    kept: dict[tuple[str, int], Trajectory] = {}
    if not path.exists():
        return kept
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            trajectory = Trajectory.model_validate_json(line)
        except ValueError:
            continue
        kept[(trajectory.task_id, trajectory.trial)] = trajectory
    return kept


def _rewrite(path: Path, trajectories: list[Trajectory]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for t in trajectories:
            fh.write(canonical_json(t.model_dump(mode="json")) + "\n")
    os.replace(tmp, path)


def write_trajectories(trajectories: Iterable[Trajectory], path: str | Path, *, timings: bool = True) -> Path:
    """JSONL with sorted keys. ``timings=False`` drops the one field that is not deterministic."""
    # atomic and sealed (artifacts.write_jsonl): read_trajectories refuses the file if it is cut short or edited
    return write_jsonl(path, ({**t.model_dump(mode="json"), **({} if timings else {"timings": {}})} for t in trajectories))


def read_trajectories(path: str | Path) -> list[Trajectory]:
    return read_model_jsonl(path, Trajectory, "a valid trajectory")
