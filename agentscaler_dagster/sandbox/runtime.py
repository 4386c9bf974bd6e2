"""Parent side of the sandbox: one long-lived jailed worker process per tool module.

Each module gets a worker of its own (at most ``max_workers`` alive, least recently used first out), so
nothing one module does is visible to another; the jail around each worker is described in ``jail.py``.
A call ships (module id, tool, arguments, state) as one frame. The parent enforces the wall clock: a call
that does not answer in time is killed with its whole jail, reported as ``killed: ...`` and the next call
gets a fresh worker. State commit is the parent's job too: the caller's state object never reaches tool
code, and a failed call returns the state it was given. ``acall`` is the same call for asyncio: it waits for
the worker's answer on the event loop (a reader on the pipe), not in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import select
import signal
import struct
import subprocess
import threading
import time
import weakref
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# relative on purpose: runtime, jail, spawn, static_check and worker use nothing but the standard library
from .jail import SandboxUnavailable, default_isolation, worker_launch
from .spawn import start_lasting
from .static_check import ALLOWED_MODULES, check_module

_HEADER = struct.Struct("!I")
_WORKER_SCRIPT = str(Path(__file__).with_name("worker.py"))


@dataclass(frozen=True)
class Limits:
    """Per-call limits of the sandbox worker."""

    wall_seconds: float = 5.0
    cpu_seconds: float = 2.0
    memory_bytes: int = 512 * 1024 * 1024
    max_output_bytes: int = 1_000_000
    max_state_bytes: int = 64_000_000
    recursion_limit: int = 2000
    max_error_chars: int = 8192
    # "strict": namespaces + seccomp or refuse; "weak": what is available, with a warning (jail.py)
    isolation: str = field(default_factory=default_isolation)

    def __post_init__(self) -> None:
        def positive(name: str, minimum: float) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum \
                    or value != value or value == float("inf"):
                raise ValueError(f"Limits.{name} must be a finite number >= {minimum:,}, got {value!r}")

        positive("wall_seconds", 0.01)
        positive("cpu_seconds", 0.01)
        positive("memory_bytes", 64 * 1024 * 1024)  # the interpreter itself needs about 30 MB
        positive("max_output_bytes", 1)
        positive("max_state_bytes", 2)
        positive("recursion_limit", 50)
        positive("max_error_chars", 16)
        if self.isolation not in ("strict", "weak"):
            raise ValueError(f"Limits.isolation must be 'strict' or 'weak', got {self.isolation!r}")

    def worker_json(self, seccomp_library: str | None) -> str:
        return json.dumps({
            "cpu_seconds": self.cpu_seconds, "memory_bytes": int(self.memory_bytes),
            "max_output_bytes": int(self.max_output_bytes), "max_state_bytes": int(self.max_state_bytes),
            "recursion_limit": int(self.recursion_limit), "max_error_chars": int(self.max_error_chars),
            "seccomp_library": seccomp_library, "require_seccomp": self.isolation == "strict",
            "allowed": {module: sorted(names) for module, names in ALLOWED_MODULES.items()},
        }, sort_keys=True)


@dataclass
class RawResult:
    ok: bool
    output: Any = None
    error: str | None = None
    state: dict | None = None
    killed: bool = False
    meta: dict = field(default_factory=dict)
    state_text: str | None = None


class ModuleRejected(ValueError):
    """The static check refused a tool module."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("tool module rejected by the static check: " + "; ".join(problems))


def module_id(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


class _SessionMemo:
    """Which state text the worker holds per session (by identity of the text object: no hashing)."""

    def __init__(self) -> None:
        self._held: dict[str, str] = {}

    def __contains__(self, item: tuple[str, str]) -> bool:
        sid, text = item
        return self._held.get(sid) is text

    def add(self, item: tuple[str, str]) -> None:
        self._held[item[0]] = item[1]
        while len(self._held) > 64:  # the worker forgets the oldest beyond this, so the memo does too
            self._held.pop(next(iter(self._held)))

    def discard_sid(self, sid: str) -> None:
        self._held.pop(sid, None)


class _WorkerProcess:
    def __init__(self, limits: Limits):
        command, env, support = worker_launch(limits.isolation, _WORKER_SCRIPT)
        # own session: a kill reaches the jail and, through it, everything inside
        # started from a thread that lives as long as the process: the jail dies with its starting thread
        self.proc = start_lasting(lambda: subprocess.Popen(
            [*command, limits.worker_json(support.seccomp_library)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, start_new_session=True, close_fds=True, bufsize=0,
        ))
        self.jailed = support.namespaces
        self.wfd = self.proc.stdin.fileno()
        self.rfd = self.proc.stdout.fileno()
        self.loaded: set[str] = set()
        self.sessions_seen = _SessionMemo()
        self.buffer = bytearray()
        self.poller = select.poll()
        self.poller.register(self.rfd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self.hello: dict = {}
        # asyncio: one reader per worker, kept on its loop between calls (see watch), and a lazy wall-clock timer
        self.loop: asyncio.AbstractEventLoop | None = None
        self.waiter: asyncio.Future | None = None  # the acall waiting for this worker's next frame
        self.max_bytes = 0
        self.deadline = 0.0  # the waiting call's wall-clock deadline (loop time)
        self.timer: asyncio.TimerHandle | None = None
        self.timer_when = 0.0
        self.unwatching: set = set()  # reader removals handed to another thread's loop
        self.dead = False

    def handshake(self, limits: Limits, timeout: float = 30.0) -> None:
        """Read the worker's hello; refuse a worker whose seccomp filter did not load in strict mode."""
        try:
            self.hello = json.loads(self.recv(time.monotonic() + timeout, 1 << 16))
        except (TimeoutError, EOFError, OverflowError, ValueError) as exc:
            self.kill()
            raise SandboxUnavailable(f"the sandbox worker did not start ({type(exc).__name__}); "
                                     f"command: {' '.join(self.proc.args[:3])} ...") from None
        if not self.hello.get("seccomp") and limits.isolation == "strict":
            self.kill()
            raise SandboxUnavailable(
                f"the sandbox worker could not load its seccomp filter: {self.hello.get('seccomp_error')}. "
                "Set AGENTSCALER_SANDBOX_ISOLATION=weak to run without it (unsafe for untrusted code).")
        self.pid = int(self.hello.get("pid", 0))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.dead = True
        self.unwatch()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        if not self.unwatching:  # else the last loop to drop its reader closes it (a closed fd's number is reused)
            self._close_out()

    def _close_out(self) -> None:
        try:
            self.proc.stdout.close()
        except OSError:
            pass

    @staticmethod
    def frame(request: bytes, state: bytes | None = None) -> bytes:
        """One frame: ``request`` JSON, then ``"\n" + state`` when a state is shipped."""
        if state is None:
            return _HEADER.pack(len(request)) + request
        return b"".join((_HEADER.pack(len(request) + 1 + len(state)), request, b"\n", state))

    def send(self, request: bytes, state: bytes | None = None) -> None:
        self.write(self.frame(request, state))

    def write(self, data: bytes) -> None:
        """Frames, whole (several at once for a batch)."""
        n = os.write(self.wfd, data)
        if n < len(data):
            view = memoryview(data)[n:]
            while view:
                n = os.write(self.wfd, view)
                view = view[n:]

    # --- asyncio ------------------------------------------------------------------------------------------
    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve this worker's frames to ``waiter`` from a reader on ``loop`` (run on that loop's thread).

        The reader stays between calls; it goes when the worker is killed, when another loop takes the worker,
        or when the pipe turns readable with no call waiting (a blocking call reads it instead).
        """
        if self.loop is not None:
            self.unwatch()
        loop.add_reader(self.rfd, self._readable, loop)
        self.loop = loop

    def unwatch(self) -> None:
        loop, timer = self.loop, self.timer
        if loop is None:
            return
        self.loop = self.timer = None
        if loop.is_closed():
            return
        if loop.is_running() and asyncio._get_running_loop() is not loop:
            # event loops are not thread-safe: the loop's own thread removes its reader
            token = object()
            self.unwatching.add(token)
            try:
                loop.call_soon_threadsafe(self._unwatch_on, loop, timer, token)
                return
            except RuntimeError:  # closed meanwhile
                self.unwatching.discard(token)
                return
        self._unwatch_on(loop, timer, None)

    def _unwatch_on(self, loop: asyncio.AbstractEventLoop, timer, token) -> None:
        if timer is not None:
            timer.cancel()
        if self.loop is not loop:  # unless the worker came back to this loop meanwhile
            loop.remove_reader(self.rfd)
        if token is not None:
            self.unwatching.discard(token)
            if self.dead and not self.unwatching:
                self._close_out()

    def _readable(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.loop is not loop:
            return
        waiter = self.waiter
        if waiter is None or waiter.done():
            self.unwatch()  # nobody here waits: a blocking call, or the kill of a cancelled call, takes the frame
            return
        try:
            self.fill()
            frame = self.pop_frame(self.max_bytes)
        except Exception as exc:  # EOFError, OverflowError, OSError: the driver sorts them
            self.waiter = None
            waiter.set_exception(exc)
            return
        if frame is not None:
            self.waiter = None
            waiter.set_result(frame)

    def arm(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """The waiting call fails with TimeoutError at ``deadline`` (one timer per worker, re-armed lazily)."""
        self.deadline = deadline
        timer = self.timer
        if timer is None or deadline < self.timer_when:  # earlier only if the limits changed
            if timer is not None:
                timer.cancel()
            self.timer_when = deadline
            self.timer = loop.call_at(deadline, self._expire, loop, deadline)

    def _expire(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self.loop is not loop or when != self.timer_when:  # a timer whose cancel is still on its way
            return
        self.timer = None
        waiter = self.waiter
        if waiter is None or waiter.done():
            return  # idle: the next call arms it again
        if self.deadline > self.timer_when:  # armed for an earlier call: on to this call's deadline
            self.arm(loop, self.deadline)
            return
        self.waiter = None
        waiter.set_exception(TimeoutError())

    def recv(self, deadline: float, max_bytes: int) -> bytes:
        """One response frame; raises TimeoutError at the deadline, EOFError when the worker died."""
        while True:
            body = self.pop_frame(max_bytes)
            if body is not None:
                return body
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if not self.poller.poll(remaining * 1000.0):
                raise TimeoutError
            self.fill()

    # framing shared by recv and Runtime's asyncio reader
    def pop_frame(self, max_bytes: int) -> bytes | None:
        """The next whole frame taken out of the buffer, or None while it is incomplete."""
        buffer = self.buffer
        if len(buffer) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(buffer)
        if size > max_bytes:
            raise OverflowError(f"response of {size} bytes exceeds the limit of {max_bytes}")
        need = _HEADER.size + size
        if len(buffer) < need:
            return None
        body = bytes(buffer[_HEADER.size:need])
        del buffer[:need]
        return body

    def fill(self) -> None:
        """One read from the worker into the buffer (call when readable); EOFError when it died."""
        need = _HEADER.size
        if len(self.buffer) >= _HEADER.size:
            need += _HEADER.unpack_from(self.buffer)[0]
        # a large state comes in one read, not many of 64 KiB
        chunk = os.read(self.rfd, max(1 << 16, need - len(self.buffer)))
        if not chunk:
            raise EOFError
        self.buffer += chunk


def _lone_surrogate(value) -> str | None:
    """The first lone surrogate in a JSON value's strings, as U+XXXX, or None."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
        return None
    except UnicodeEncodeError as exc:
        return f"U+{ord(exc.object[exc.start]):04X}"
    except (TypeError, ValueError):
        return None  # not JSON at all: reported by the caller's own encoding


class _LoopLock:
    """One event loop's turn to use the runtime: asyncio.Lock's FIFO order without its coroutines when free."""

    __slots__ = ("busy", "waiters")

    def __init__(self) -> None:
        self.busy = False
        self.waiters: deque = deque()

    async def wait(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait for the turn while ``busy``; the releaser hands it over (``busy`` stays True)."""
        turn = loop.create_future()
        self.waiters.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.cancelled():
                try:
                    self.waiters.remove(turn)
                except ValueError:
                    pass
            else:
                self.release()  # handed over just before the cancellation: pass it on
            raise

    def release(self) -> None:
        waiters = self.waiters
        while waiters:
            turn = waiters.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.busy = False


class _Batch:
    """One event loop's calls waiting for a busy runtime (see ``Runtime._wait_in_batch``)."""

    __slots__ = ("queue", "drain")

    def __init__(self) -> None:
        self.queue: deque = deque()  # (mid, request, state_text, state, future of the RawResult)
        self.drain: asyncio.Task | None = None


def _set(done: asyncio.Future, outcome) -> None:
    if done.done():  # its caller went away
        return
    if isinstance(outcome, BaseException):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)


_BATCH_CALLS = 32
_BATCH_BYTES = 60_000  # under a pipe's 64 KiB


# what an exchange raises when the worker did not answer properly; thrown into Runtime._steps
_EXCHANGE_FAILURES = (TimeoutError, OverflowError, EOFError, BrokenPipeError, ConnectionResetError)


# built once: json.dumps with options builds an encoder per call
_STATE_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_REQUEST_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _encode(request: dict) -> bytes:
    return json.dumps(request, separators=(",", ":"), ensure_ascii=True).encode("utf-8")


_DECODER = json.JSONDecoder()


def _decode(body: bytes) -> dict:
    meta, sep, new_state = body.partition(b"\n")
    # json.loads(bytes) with its encoding detection skipped: that finds UTF-8 for text that starts so
    response = _DECODER.decode(meta.decode("utf-8", "surrogatepass")) if meta[:2] == b'{"' else json.loads(meta)
    if sep:
        response["state_text"] = new_state.decode("utf-8")
    return response


class Runtime:
    """Runs tool functions of checked modules, each module in its own jailed worker (thread-safe, serial).

    ``call`` blocks; ``acall`` awaits. Both go one at a time through the same lock, so they can be mixed,
    except a blocking call from an event loop's thread while that loop has an acall in flight (refused).

    ``static_check=False`` skips the static check: the jail alone must then contain the code. It exists to
    test the jail (``agentscaler sandbox-run --no-static-check``); do not use it otherwise.
    """

    def __init__(self, limits: Limits | None = None, *, static_check: bool = True, max_workers: int = 8):
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.limits = limits or Limits()
        self.static_check = static_check
        self.max_workers = max_workers
        self._workers: OrderedDict[str, _WorkerProcess] = OrderedDict()
        self._lock = threading.Lock()
        self._async_locks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> _LoopLock
        self._async_holder: int | None = None  # thread of the acall holding _lock, if one does
        self._async_lock_last: tuple | None = None  # (loop, lock) of the last acall: skips the weak lookup
        self._batches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> _Batch
        self._checked: dict[str, list[str]] = {}
        self._sources: dict[str, str] = {}
        self._last_pid: int | None = None
        self.restarts = 0

    # --- module registry ---------------------------------------------------------------------------
    def register(self, source: str) -> str:
        """Statically check a module and return its id; raises ModuleRejected with the reasons."""
        if not isinstance(source, str):
            raise ModuleRejected([f"source must be str, got {type(source).__name__}"])
        mid = module_id(source) if _lone_surrogate(source) is None else hashlib.sha256(
            source.encode("utf-8", "surrogatepass")).hexdigest()
        if self.static_check:
            if mid not in self._checked:
                self._checked[mid] = check_module(source)
            if self._checked[mid]:
                raise ModuleRejected(self._checked[mid])
        self._sources[mid] = source
        return mid

    # --- worker lifecycle ------------------------------------------------------------------------------
    def _ensure_worker(self, mid: str) -> _WorkerProcess:
        worker = self._workers.get(mid)
        if worker is not None and not worker.alive():
            worker.kill()
            del self._workers[mid]
            self.restarts += 1
            worker = None
        if worker is None:
            while len(self._workers) >= self.max_workers:
                _, oldest = self._workers.popitem(last=False)
                oldest.kill()
            worker = _WorkerProcess(self.limits)
            worker.handshake(self.limits)
            self._workers[mid] = worker
        self._workers.move_to_end(mid)
        self._last_pid = worker.proc.pid
        return worker

    def _replace_worker(self, mid: str) -> None:
        worker = self._workers.pop(mid, None)
        if worker is not None:
            worker.kill()
            self.restarts += 1

    def close(self) -> None:
        self._acquire()
        try:
            while self._workers:
                _, worker = self._workers.popitem()
                worker.kill()
        finally:
            self._lock.release()

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten runtime must not leave a process behind
        try:
            for worker in list(self._workers.values()):
                worker.kill()
        except Exception:
            pass

    @property
    def worker_pid(self) -> int | None:
        """The process id (as the parent sees it) of the worker that served the last call."""
        return self._last_pid

    def worker_pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers.values()]

    # --- calls -----------------------------------------------------------------------------------------
    def _max_response(self) -> int:
        return (self.limits.max_state_bytes + self.limits.max_output_bytes
                + 4 * self.limits.max_error_chars + 1024)

    def _exchange(self, worker: _WorkerProcess, request: bytes, state: bytes | None = None) -> dict:
        deadline = time.monotonic() + self.limits.wall_seconds
        # the worker compares its state after the call with the state text to see whether it changed
        worker.send(request, state)
        return _decode(worker.recv(deadline, self._max_response()))

    def _death_reason(self, worker: _WorkerProcess) -> str:
        try:
            code = worker.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return "killed: worker stopped answering"
        sig = None
        if code is not None and code < 0:
            sig = -code
        elif worker.jailed and code is not None and code > 128:
            sig = code - 128  # bubblewrap reports its child's death by signal as 128 + signal
        if sig is not None:
            if sig == signal.SIGXCPU:
                return f"killed: CPU time limit of {self.limits.cpu_seconds:g}s exceeded"
            if sig == signal.SIGKILL:
                return (f"killed: by signal SIGKILL (likely CPU time or memory limit of "
                        f"{self.limits.memory_bytes} bytes)")
            try:
                return f"killed: by signal {signal.Signals(sig).name}"
            except ValueError:
                return f"killed: by signal {sig}"
        return f"killed: worker exited with code {code}"

    @staticmethod
    def _state_json(state: dict) -> str | RawResult:
        try:
            return _STATE_ENCODER.encode(state)
        except (TypeError, ValueError) as exc:
            return RawResult(ok=False, error=f"the state is not JSON: {exc}", state=state)

    @staticmethod
    def _with_state(raw: RawResult, state: dict) -> RawResult:
        if raw.ok:
            raw.state = state if raw.state_text is None else json.loads(raw.state_text)
        else:
            raw.state = state
        return raw

    def call(self, mid: str, tool: str, arguments: dict, state: dict) -> RawResult:
        """Run ``tool(state, **arguments)`` of module ``mid`` on a private copy of ``state``."""
        text = self._state_json(state)
        if isinstance(text, RawResult):
            return text
        return self._with_state(self._call(mid, tool, arguments, text, None), state)

    async def acall(self, mid: str, tool: str, arguments: dict, state: dict) -> RawResult:
        """``call`` for asyncio: the wait for the worker's answer yields to the event loop.

        Calls on one runtime still run one at a time (the worker is serial); a worker start blocks. Calls (no
        session) that arrive while the runtime is busy wait in a queue and then go to the worker together, in one
        write; each keeps its own wall-clock limit, and a call that kills the worker fails alone (the ones
        behind it run on a fresh worker).
        """
        text = self._state_json(state)
        if isinstance(text, RawResult):
            return text
        return self._with_state(await self._acall(mid, tool, arguments, text, None), state)

    def session_call(self, mid: str, sid: str, tool: str, arguments: dict, state_text: str) -> RawResult:
        """Like call, for a session whose current state (``state_text``) the worker may already hold.

        ``raw.state_text`` is the new state's JSON text when the call changed it, else None.
        """
        return self._call(mid, tool, arguments, state_text, sid)

    async def asession_call(self, mid: str, sid: str, tool: str, arguments: dict, state_text: str) -> RawResult:
        """``session_call`` for asyncio (see ``acall``)."""
        return await self._acall(mid, tool, arguments, state_text, sid)

    def _precheck(self, mid: str, tool: str, arguments: dict, state_text: str, sid: str | None) -> tuple:
        """``(refusal, None, None)`` for a call that never reaches a worker, else ``(None, request, state)``.

        ``request`` is the call's request frame (bytes), or its dict where that must be encoded as it goes out;
        ``state`` is the state text in UTF-8.
        """
        if mid not in self._sources:
            raise KeyError(f"module {mid} is not registered with this runtime")
        if not isinstance(arguments, dict):
            return RawResult(ok=False, error=f"arguments must be a JSON object, got {type(arguments).__name__}"), \
                None, None
        request = {"op": "call", "mid": mid, "tool": tool, "args": arguments}
        if sid is not None:
            request["sid"] = sid
        try:
            # one encoding is also the lone-surrogate check: UTF-8 refuses them
            request = _REQUEST_ENCODER.encode(request).encode("utf-8")
        except (ValueError, TypeError, RecursionError):  # UnicodeEncodeError is a ValueError
            bad = _lone_surrogate(arguments)  # the exact check names it; anything else fails as it goes out
            if bad is not None:
                return RawResult(ok=False, error=f"an argument contains a lone surrogate ({bad}), which is not "
                                                 "valid Unicode", meta={"tool_error": False}), None, None
        try:
            state = state_text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return RawResult(ok=False, error="the state contains a lone surrogate "
                                             f"(U+{ord(exc.object[exc.start]):04X}), which is not valid Unicode"), \
                None, None
        return None, request, state

    def _acquire(self) -> None:
        """Take the thread lock for a sync call; refuse the one case that could never get it."""
        if self._lock.acquire(blocking=False):
            return
        if self._async_holder == threading.get_ident():
            # an acall of this thread's event loop holds the lock across an await: waiting would hang forever
            raise RuntimeError("a blocking Runtime call from the event loop's thread while an acall on this "
                               "runtime is in flight would deadlock; await acall instead")
        self._lock.acquire()

    def _call(self, mid: str, tool: str, arguments: dict, state_text: str, sid: str | None) -> RawResult:
        refused, request, state = self._precheck(mid, tool, arguments, state_text, sid)
        if refused is not None:
            return refused
        self._acquire()
        try:
            steps = self._steps(mid, request, state_text, state, sid)
            try:
                step = next(steps)
                while True:
                    try:
                        response = self._exchange(*step)
                    except _EXCHANGE_FAILURES as exc:
                        step = steps.throw(exc)
                    else:
                        step = steps.send(response)
            except StopIteration as done:
                return done.value
        finally:
            self._lock.release()

    def _async_lock(self, loop: asyncio.AbstractEventLoop) -> _LoopLock:
        # a lock's futures belong to one loop, and a runtime may outlive several asyncio.run calls
        last = self._async_lock_last
        if last is not None and last[0] is loop:
            return last[1]
        lock = self._async_locks.get(loop)
        if lock is None:
            lock = self._async_locks.setdefault(loop, _LoopLock())
        self._async_lock_last = (loop, lock)
        return lock

    def _asend(self, loop: asyncio.AbstractEventLoop, worker: _WorkerProcess, request: bytes,
               state: bytes | None) -> bytes | asyncio.Future:
        """``_exchange`` for the event loop: the answer's frame, or a future of it (the worker's reader sets it)."""
        deadline = loop.time() + self.limits.wall_seconds
        worker.send(request, state)  # the idle worker drains the pipe: at most a brief block
        return self._frame_or_future(loop, worker, deadline)

    def _frame_or_future(self, loop: asyncio.AbstractEventLoop, worker: _WorkerProcess,
                         deadline: float) -> bytes | asyncio.Future:
        """The worker's next frame if it is in, else a future of it that fails at ``deadline``."""
        max_bytes = self._max_response()
        body = worker.pop_frame(max_bytes)
        if body is not None:
            return body
        if worker.loop is not loop:
            worker.watch(loop)
        answered = loop.create_future()
        worker.waiter = answered
        worker.max_bytes = max_bytes
        worker.arm(loop, deadline)
        return answered

    async def _acall(self, mid: str, tool: str, arguments: dict, state_text: str, sid: str | None) -> RawResult:
        refused, request, state = self._precheck(mid, tool, arguments, state_text, sid)
        if refused is not None:
            return refused
        loop = asyncio.get_running_loop()
        lock = self._async_lock(loop)
        if lock.busy and sid is None:
            return await self._wait_in_batch(loop, lock, (mid, request, state_text, state))
        await self._take(loop, lock)
        try:
            steps = self._steps(mid, request, state_text, state, sid)
            try:
                return await self._drive(loop, mid, steps, next(steps))
            except StopIteration as done:
                return done.value
        finally:
            self._give(lock)

    async def _take(self, loop: asyncio.AbstractEventLoop, lock: _LoopLock) -> None:
        """This loop's turn, then the thread lock (uncontended unless a sync caller on another thread, or another
        loop, is mid-call); ``_give`` hands both back."""
        if lock.busy:
            await lock.wait(loop)
        else:
            lock.busy = True
        try:
            self._lock.acquire()
        except BaseException:
            lock.release()
            raise
        self._async_holder = threading.get_ident()

    def _give(self, lock: _LoopLock) -> None:
        self._async_holder = None
        self._lock.release()
        lock.release()

    async def _drive(self, loop: asyncio.AbstractEventLoop, mid: str, steps, step) -> RawResult:
        """A call's remaining exchanges, one at a time, from ``step`` on (the runtime's locks held)."""
        try:
            while True:
                worker = step[0]
                try:
                    body = self._asend(loop, *step)
                    if body.__class__ is not bytes:
                        try:
                            body = await body
                        finally:
                            worker.waiter = None
                    response = _decode(body)
                except _EXCHANGE_FAILURES as exc:
                    step = steps.throw(exc)
                except asyncio.CancelledError:
                    steps.close()
                    # the request went out and its answer may still come: a fresh worker keeps
                    # the next call from reading it
                    if self._workers.get(mid) is worker:
                        self._replace_worker(mid)
                    raise
                else:
                    step = steps.send(response)
        except StopIteration as done:
            return done.value

    # --- calls queued behind a busy runtime go out together ------------------------------------------------
    async def _wait_in_batch(self, loop: asyncio.AbstractEventLoop, lock: _LoopLock, call: tuple) -> RawResult:
        """A call (no session) that found the runtime busy waits in a queue. One drain per loop takes the runtime
        in turn and writes the queued calls of one module to the worker at once; the worker answers them in
        order, reading each next request without going to sleep first (a probe on this VM: the worker's CPU per
        call 80 -> 62 us, the parent's 28 -> 15 us, for batches of 4 or more)."""
        batch = self._batches.get(loop)
        if batch is None:
            batch = self._batches[loop] = _Batch()
        done = loop.create_future()
        batch.queue.append((*call, done))
        if batch.drain is None or batch.drain.done():
            batch.drain = loop.create_task(self._drain(loop, lock, batch))
        return await done

    async def _drain(self, loop: asyncio.AbstractEventLoop, lock: _LoopLock, batch: "_Batch") -> None:
        try:
            while batch.queue:
                await self._take(loop, lock)
                try:
                    await self._run_batch(loop, batch)
                finally:
                    self._give(lock)
        except BaseException as exc:  # noqa: BLE001 - no queued caller may wait forever
            while batch.queue:
                done = batch.queue.popleft()[-1]
                if not done.done():
                    if isinstance(exc, Exception):
                        done.set_exception(exc)
                    else:
                        done.cancel()
            if not isinstance(exc, Exception):
                raise  # cancelled with its loop; an error went to the callers
        finally:
            batch.drain = None

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: "_Batch") -> None:
        queue = batch.queue
        mid = queue[0][0]
        items: list[tuple] = []
        others: list[tuple] = []
        size = 0
        while queue and len(items) < _BATCH_CALLS:
            item = queue.popleft()
            if item[-1].done():  # its caller went away
                continue
            if item[0] != mid:
                others.append(item)
                continue
            frame_size = _HEADER.size + len(item[1]) + 1 + len(item[3])
            # all frames fit in the pipe's buffer: the write never waits on a worker that waits on us to read
            if items and size + frame_size > _BATCH_BYTES:
                queue.appendleft(item)
                break
            items.append(item)
            size += frame_size
        queue.extendleft(reversed(others))
        try:
            await self._send_batch(loop, batch, mid, items)
        except BaseException as exc:  # noqa: BLE001 - no caller of this batch may wait forever
            for item in items:
                if not item[-1].done():
                    if isinstance(exc, Exception):
                        item[-1].set_exception(exc)
                    else:
                        item[-1].cancel()
            raise

    async def _send_batch(self, loop: asyncio.AbstractEventLoop, batch: "_Batch", mid: str, items: list) -> None:
        ready = []  # (item, steps, step) at their call exchange, on the module's worker
        for item in items:
            steps = self._steps(*item[:4], None)
            try:
                step = next(steps)  # starts or replaces the worker where needed
                if step[1] is item[1]:
                    ready.append((item, steps, step))
                    continue
                # a module load first (or a request encoded as it goes out): this call goes alone
                await self._settle(item[-1], self._drive(loop, mid, steps, step))
            except StopIteration as stopped:
                _set(item[-1], stopped.value)
            except Exception as exc:  # noqa: BLE001 - the caller's exception (e.g. the sandbox cannot start)
                _set(item[-1], exc)
        worker = self._workers.get(mid)
        stale = [r for r in ready if r[2][0] is not worker]  # a worker replaced meanwhile: the next batch
        ready = [r for r in ready if r[2][0] is worker]
        self._requeue(batch, stale)
        if not ready:
            return
        later = []
        try:
            try:
                worker.write(b"".join(worker.frame(step[1], step[2]) for _, _, step in ready))
            except BrokenPipeError as exc:  # the worker died before it heard us: the first call finds out
                self._requeue(batch, ready[1:])
                await self._settle(ready[0][0][-1], self._resume(loop, mid, ready[0][1], exc))
                return
            deadline = loop.time() + self.limits.wall_seconds
            for sent, (item, steps, step) in enumerate(ready):
                try:
                    response = _decode(await self._next_frame(loop, worker, deadline))
                except _EXCHANGE_FAILURES as exc:
                    # the call the worker was running when it failed; the ones after it never ran: next batch
                    self._requeue(batch, ready[sent + 1:] + later)
                    later = []
                    await self._settle(item[-1], self._resume(loop, mid, steps, exc))
                    return
                deadline = loop.time() + self.limits.wall_seconds  # the next call starts now
                try:
                    step = steps.send(response)
                except StopIteration as stopped:
                    _set(item[-1], stopped.value)
                else:
                    later.append((item, steps, step))  # the call did not run (module reload): it goes again
                if self._workers.get(mid) is not worker:  # a fatal answer: the worker ended after this call
                    self._requeue(batch, ready[sent + 1:])
                    break
        except BaseException:  # cancelled, or an answer that does not decode
            for item, steps, _ in ready:
                steps.close()
            if self._workers.get(mid) is worker:
                self._replace_worker(mid)  # answers may still come: a fresh worker for the next call
            raise
        # one more exchange each, after every answer of the batch is in: back in the queue, from the start
        self._requeue(batch, later)

    async def _resume(self, loop: asyncio.AbstractEventLoop, mid: str, steps, exc: BaseException) -> RawResult:
        try:
            step = steps.throw(exc)
        except StopIteration as stopped:
            return stopped.value
        return await self._drive(loop, mid, steps, step)

    @staticmethod
    async def _settle(done: asyncio.Future, outcome) -> None:
        try:
            result = await outcome
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the caller's
            _set(done, exc)
        else:
            _set(done, result)

    @staticmethod
    def _requeue(batch: "_Batch", ready: list) -> None:
        for item, steps, _ in reversed(ready):
            steps.close()
            batch.queue.appendleft(item)

    async def _next_frame(self, loop: asyncio.AbstractEventLoop, worker: _WorkerProcess, deadline: float) -> bytes:
        body = self._frame_or_future(loop, worker, deadline)
        if body.__class__ is bytes:
            return body
        try:
            return await body
        finally:
            worker.waiter = None

    def _steps(self, mid: str, request: bytes | dict, state_text: str, state: bytes, sid: str | None):
        """The body of a call, free of I/O, so that a blocking and an asyncio driver share it.

        Yields ``(worker, request frame, state or None)`` per exchange; the driver sends the response dict
        back in, or throws in the exchange's failure (one of ``_EXCHANGE_FAILURES``). Returns the RawResult.
        Runs with the runtime's lock held.
        """
        source = self._sources[mid]
        for attempt in range(2):
            worker = self._ensure_worker(mid)
            try:
                if mid not in worker.loaded:
                    loaded = yield worker, _encode({"op": "load", "mid": mid, "source": source}), None
                    if not loaded.get("ok"):
                        if loaded.get("fatal"):
                            self._replace_worker(mid)
                            return RawResult(ok=False, error=loaded.get("error"), killed=True)
                        return RawResult(ok=False, error=loaded.get("error"))
                    worker.loaded.add(mid)
                if request.__class__ is not bytes:
                    request = _encode(request)  # raises what the arguments' encoding raises
                ship = sid is None or (sid, state_text) not in worker.sessions_seen
                response = yield worker, request, state if ship else None
                if response.get("reseed"):
                    response = yield worker, request, state
            except TimeoutError:
                self._replace_worker(mid)
                return RawResult(ok=False, killed=True,
                                 error=f"killed: wall-clock limit of {self.limits.wall_seconds:g}s exceeded")
            except OverflowError as exc:
                self._replace_worker(mid)
                return RawResult(ok=False, killed=True, error=f"killed: {exc}")
            except (EOFError, BrokenPipeError, ConnectionResetError):
                reason = self._death_reason(worker)
                self._replace_worker(mid)
                if attempt == 0 and worker.loaded == set() and "exited with code 0" in reason:
                    continue  # the worker died before it heard us: try a fresh one once
                return RawResult(ok=False, killed=True, error=reason)
            if response.get("reload"):
                worker.loaded.discard(mid)
                continue
            if response.get("fatal"):
                self._replace_worker(mid)
                return RawResult(ok=False, killed=True, error=response.get("error"))
            if sid is not None:
                worker.sessions_seen.discard_sid(sid)
                new_text = response.get("state_text") if response.get("ok") else None
                worker.sessions_seen.add((sid, new_text if new_text is not None else state_text))
            if response.get("ok"):
                return RawResult(ok=True, output=response.get("output"), state_text=response.get("state_text"))
            return RawResult(ok=False, error=response.get("error"),
                             meta={"tool_error": bool(response.get("tool_error"))})
        return RawResult(ok=False, error="worker could not run the call")

    def ping(self, mid: str | None = None) -> dict:
        """The hello of the worker for ``mid`` (started if needed): pid inside its jail, seccomp status."""
        self._acquire()
        try:
            if mid is None:
                worker = _WorkerProcess(self.limits)
                try:
                    worker.handshake(self.limits)
                    return dict(worker.hello, jailed=worker.jailed)
                finally:
                    worker.kill()
            worker = self._ensure_worker(mid)
            return dict(worker.hello, jailed=worker.jailed)
        finally:
            self._lock.release()


__all__ = ["Limits", "ModuleRejected", "RawResult", "Runtime", "SandboxUnavailable", "module_id"]
