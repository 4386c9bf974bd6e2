"""The user-agent episode loop (paper, step 5; tau-bench style) and its files.

The environment state is threaded through ``env.call`` from the task's initial state; a tool
error, a malformed call or an unknown tool becomes an ``Error: ...`` tool message that the agent
reads (an observation, not a crash). An exception from the agent or the user (a simulator bug, a
model backend that gave up) ends the episode and is recorded in the trajectory, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import gc
import json
import os
import queue
import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Generator, Iterable

from agentscaler_dagster.artifacts import mark_unfinished, read_model_jsonl, write_jsonl
from agentscaler_dagster.contracts import EncodedTools, Task, Trajectory, canonical_json, content_hash, state_hash
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
    episode = _episode(task, env, agent, user, trial=trial, max_turns=max_turns, system_prompt=system_prompt)
    try:
        wait = next(episode)
        while True:
            obj, method, args = wait
            try:
                result = getattr(obj, method)(*args)
            except Exception as exc:  # noqa: BLE001 - the episode records it
                wait = episode.throw(exc)
            else:
                wait = episode.send(result)
    except StopIteration as done:
        return done.value


async def arun_episode(
    task: Task,
    env: EnvironmentLike,
    agent: AgentPolicy,
    user: UserSimulator,
    *,
    trial: int,
    max_turns: int = 20,
    system_prompt: str | None = None,
    executor: Executor | None = None,
) -> Trajectory:
    """``run_episode`` on the running event loop: the same episode, byte for byte.

    Each wait goes to the role's ``a``-method when it has one (``aact``, ``astart``, ``areply``, the environment's
    ``acall``) and no subclass overrides the plain method alone; a role marked ``nonblocking`` (a programmatic
    simulator) runs on the loop; anything else runs on ``executor`` (threads), so a blocking agent still works,
    just not at the loop's speed.
    """
    loop = asyncio.get_running_loop()
    episode = _episode(task, env, agent, user, trial=trial, max_turns=max_turns, system_prompt=system_prompt)
    try:
        wait = next(episode)
        while True:
            obj, method, args = wait
            try:
                native = getattr(obj, "a" + method) if _has_native(type(obj), method) else None
                if native is not None:
                    result = await native(*args)
                elif getattr(obj, "nonblocking", False):
                    result = getattr(obj, method)(*args)
                else:
                    result = await loop.run_in_executor(executor, getattr(obj, method), *args)
            except Exception as exc:  # noqa: BLE001 - the episode records it
                wait = episode.throw(exc)
            else:
                wait = episode.send(result)
    except StopIteration as done:
        return done.value


@functools.lru_cache(maxsize=1024)
def _declared_over(cls: type, attr: str, *methods: str) -> bool:
    """Whether ``attr`` is declared on ``cls`` no higher up than any of ``methods``: what a class says about
    its methods (a coroutine twin, "reads messages only") must not carry over to a subclass that overrides
    the methods alone (a slowed-down, instrumented or mutating agent)."""
    mro = cls.__mro__
    at = next((i for i, k in enumerate(mro) if attr in vars(k)), None)
    if at is None:
        return False
    return all(at <= i for m in methods for i, k in enumerate(mro) if m in vars(k))


def _has_native(cls: type, method: str) -> bool:
    return _declared_over(cls, "a" + method, method)


def _episode(task: Task, env: EnvironmentLike, agent: AgentPolicy, user: UserSimulator, *, trial: int, max_turns: int,
             system_prompt: str | None) -> Generator[tuple[object, str, tuple], object, Trajectory]:
    """The episode without its waits (sans-I/O): yields each call that waits - ``(role, method, args)`` - and is
    sent its result, or thrown its exception; returns the trajectory. One logic for both drivers."""
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
    state = _json_copy(state)
    tools = env.tools
    if task.prompt_tools:
        shown = set(task.prompt_tools)
        tools = [t for t in tools if t["function"]["name"] in shown]
    tools = EncodedTools(tools)
    known = {t["function"]["name"] for t in tools}
    messages: list[dict] = [{"role": "system", "content": system_prompt or domain_instructions(env)}]
    agent_view, user_view = _View(agent, "act", "aact"), _View(user, "reply", "areply")
    steps: list[dict] = []
    termination, error = None, None
    started = clock = time.perf_counter()

    def lap(kind: str) -> None:
        steps.append({"kind": kind, "s": round(time.perf_counter() - clock, 6)})

    bind = getattr(user, "bind_task", None)
    bind_agent = getattr(agent, "bind_task", None)
    try:
        if callable(bind_agent):
            bind_agent(task)  # an oracle simulator knows the task's gold steps; a model never does
        if callable(bind):
            bind(task)
        clock = time.perf_counter()
        try:
            first = yield user, "start", (task.user_intent,)
        finally:
            lap("user")
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
        clock = time.perf_counter()
        try:
            try:
                reply = yield agent, "act", (agent_view.of(messages), tools)
            finally:
                lap("agent")
            assistant = _normalise_assistant(reply, agent_turns)
        except Exception as exc:  # noqa: BLE001 - recorded in the trajectory
            termination, error = "agent_error", _describe(exc)
            break
        agent_turns += 1
        messages.append(assistant)
        if assistant.get("tool_calls"):
            for tool_call in assistant["tool_calls"]:
                clock = time.perf_counter()
                name = tool_call["function"]["name"]
                arguments, content = _call_arguments(known, tool_call)
                if content is None:
                    try:
                        result = yield env, "call", (state, name, arguments)
                    except Exception as exc:  # noqa: BLE001 - the runtime failed; the agent sees it as an observation
                        content = f"Error: {name} failed to run ({_describe(exc)})"
                    else:
                        content, state = _observation(result, state)
                lap("tool")
                messages.append({"role": "tool", "tool_call_id": tool_call["id"], "name": name, "content": content})
            continue
        clock = time.perf_counter()
        try:
            try:
                answer = yield user, "reply", (user_view.of(messages),)
            finally:
                lap("user")
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


class _View:
    """One role's copy of the conversation, grown by the messages it has not seen yet: the record is never
    handed out, and a turn copies only what is new (a whole copy per turn grows with the square of its length).
    A role that declares ``reads_messages_only = True`` (it never changes what it is given) reads the record's
    messages themselves, in a list of its own."""

    def __init__(self, role, *methods: str) -> None:
        self._copies: list[dict] = []
        self._shared = (getattr(role, "reads_messages_only", False) is True
                        and _declared_over(type(role), "reads_messages_only", *methods))

    def of(self, messages: list[dict]) -> list[dict]:
        if self._shared:
            return list(messages)
        self._copies.extend(_json_copy(m) for m in messages[len(self._copies):])
        return list(self._copies)


def _json_copy(value):
    """A deep copy of JSON data (dicts, lists, scalars): what copy.deepcopy gives here, several times faster
    (no memo); the roles get copies so that nothing they do to a message changes the record."""
    kind = type(value)
    if kind is dict:
        return {k: v if type(v) in _SCALARS else _json_copy(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _SCALARS else _json_copy(v) for v in value]
    if kind in _SCALARS:
        return value
    return copy.deepcopy(value)


_SCALARS = frozenset((str, int, float, bool, type(None)))


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


def _call_arguments(known: set[str], tool_call: dict) -> tuple[dict, str | None]:
    """The call's arguments, or the observation that says why it cannot run (the agent reads it)."""
    name = tool_call["function"]["name"]
    raw = tool_call["function"]["arguments"]
    try:
        arguments = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        return {}, f"Error: arguments of {name} are not valid JSON ({exc.msg} at position {exc.pos})"
    if not isinstance(arguments, dict):
        return {}, f"Error: arguments of {name} must be a JSON object, got {type(arguments).__name__}"
    if name not in known:
        return {}, f"Error: unknown tool '{name}'; available: {', '.join(sorted(known))}"
    return arguments, None


def _observation(result, state: dict) -> tuple[str, dict]:
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

    The state travels with each call, so any copy can run it: on the event loop a call goes to the copy with
    the fewest calls in flight (calls queued on a busy copy reach its worker together, in one write); from
    threads, to whichever copy is free. Concurrent episodes are not queued behind one sandbox worker.
    """

    def __init__(self, copies: list):
        if not copies:
            raise ValueError("EnvironmentPool needs at least one loaded environment")
        ids = {getattr(c, "domain_id", None) for c in copies}
        if len(ids) != 1:
            raise ValueError(f"EnvironmentPool copies must be of one environment, got domains {sorted(map(str, ids))}")
        self._copies = copies
        self._native = all(callable(getattr(c, "acall", None)) for c in copies)
        self._in_flight = [0] * len(copies)
        self._loop_free: tuple | None = None  # (loop, asyncio.Queue of free copies) for acall
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for c in copies:
            self._free.put(c)

    def __getattr__(self, name: str):
        # tools, schema, initial states, policy ...: the same in every copy
        return getattr(self._copies[0], name)

    def warm(self) -> None:
        """Start every copy's sandbox worker, side by side."""
        warms = [getattr(c, "warm", None) for c in self._copies]
        with ThreadPoolExecutor(max_workers=len(self._copies)) as pool:
            list(pool.map(lambda warm: warm() if callable(warm) else None, warms))

    def call(self, state: dict, name: str, arguments: dict):
        copy_ = self._free.get()
        try:
            return copy_.call(state, name, arguments)
        finally:
            self._free.put(copy_)

    async def acall(self, state: dict, name: str, arguments: dict):
        if self._native:
            # the copy with the fewest calls in flight, without waiting for a free one: calls queued on a busy
            # copy go to its worker together, in one write (sandbox ``Runtime``)
            load = self._in_flight
            i = load.index(min(load))
            load[i] += 1
            try:
                return await self._copies[i].acall(state, name, arguments)
            finally:
                load[i] -= 1
        loop = asyncio.get_running_loop()
        if self._loop_free is None or self._loop_free[0] is not loop:
            free: asyncio.Queue = asyncio.Queue()
            for c in self._copies:
                free.put_nowait(c)
            self._loop_free = (loop, free)
        free = self._loop_free[1]
        copy_ = await free.get()
        try:
            native = getattr(copy_, "acall", None)
            if native is not None:
                return await native(state, name, arguments)
            return await asyncio.to_thread(copy_.call, state, name, arguments)
        finally:
            free.put_nowait(copy_)


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
    engine: str = "asyncio",
) -> list[Trajectory]:
    """``trials`` episodes per task, each with fresh simulators seeded per (task, trial).

    Up to ``concurrency`` episodes run at once. ``engine="asyncio"`` (the default) plays them on one event
    loop: model calls and sandboxed tool calls wait without a thread each (``arun_episode``); a role without
    ``a``-methods that is not ``nonblocking`` gets a thread for its calls. ``engine="threads"`` gives each
    episode a thread, as before (kept for comparison: ``benchmarks/bench_serving.py``). One episode at a time
    runs in this thread. Either way an episode's trajectory is the same. ``env`` may be a list of loaded copies
    of one environment (one sandbox worker each): each tool call takes whichever copy is free (see ``EnvironmentPool``). A task
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
    if engine not in ("asyncio", "threads"):
        raise ValueError(f"engine must be 'asyncio' or 'threads', got {engine!r}")
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

    def record(trajectory: Trajectory, attempt: int) -> Trajectory:
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
        return record(trajectory, attempt)

    async def aplay(task: Task, trial: int, executor: Executor) -> Trajectory:
        s = episode_seed(seed, task.task_id, trial)
        for attempt in range(backend_retries + 1):
            agent, user = agent_factory(s), user_factory(s)
            try:
                trajectory = await arun_episode(task, env, agent, user, trial=trial, max_turns=max_turns,
                                                system_prompt=system_prompt, executor=executor)
            except ValueError as exc:
                trajectory = _setup_error(task, trial, agent, user, exc)
            if not backend_failed(trajectory):
                break
        return record(trajectory, attempt)

    todo = [(task, trial) for task in tasks for trial in range(trials) if (task.task_id, trial) not in done]
    try:
        if concurrency == 1:
            results = [play(task, trial) for task, trial in todo]
        elif engine == "threads":
            with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="episode") as pool:
                results = list(pool.map(lambda pair: play(*pair), todo))
        else:
            warm = getattr(env, "warm", None)
            if callable(warm) and todo:
                warm()  # a worker started mid-run would hold up the loop, and every episode on it
            results = run_on_loop(play_all(todo, aplay, concurrency))
    finally:
        if sink is not None:
            sink.close()
    for trajectory in results:
        done[(trajectory.task_id, trajectory.trial)] = trajectory
    return sorted(done.values(), key=lambda t: order[(t.task_id, t.trial)])


async def play_all(todo: list, aplay, concurrency: int) -> list:
    """``concurrency`` players, each taking the next (task, trial) when its episode ends:
    ``await aplay(task, trial, executor)`` for each, results in ``todo``'s order (rollouts, evaluation)."""
    results: list = [None] * len(todo)
    pending = iter(range(len(todo)))
    # roles that block (no a-methods) wait here, one thread per concurrent episode at most
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="episode-blocking") as executor:
        async def player() -> None:
            for i in pending:
                results[i] = await aplay(*todo[i], executor)

        await asyncio.gather(*(player() for _ in range(min(concurrency, len(todo)))))
    return results


def run_on_loop(coroutine):
    """Run ``coroutine`` to the end from synchronous code, even where this thread already runs a loop
    (a notebook): then on a thread of its own. On uvloop where it is installed: its loop turns cost about a
    third less CPU than asyncio's, which is most of what is left of the engine's own time."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with _fewer_collections(), asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(coroutine)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="episode-loop") as one:
        return one.submit(run_on_loop, coroutine).result()


@contextlib.contextmanager
def _fewer_collections():
    """The engine allocates fast (hundreds of episodes' messages, futures and frames): with the interpreter's
    default thresholds the cyclic GC runs every 700 allocations and rescans every object already alive (models,
    environments, the caller's data). For the run, objects alive before it are set aside (``gc.freeze``) and young
    collections come ten times less often; both are restored after. Measured: 2,000 episodes at 256 at once,
    1.23-1.31x of the ideal time without, 1.18-1.23x with (benchmarks/RESULTS.md, "Serving")."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], 7000), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def _loop_factory():
    if os.environ.get("AGENTSCALER_EVENT_LOOP", "uvloop") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


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
