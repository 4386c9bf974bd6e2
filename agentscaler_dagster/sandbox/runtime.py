"""Parent side of the sandbox: one long-lived jailed worker process per tool module.

Each module gets a worker of its own (at most ``max_workers`` alive, least recently used first out), so
nothing one module does is visible to another; the jail around each worker is described in ``jail.py``.
A call ships (module id, tool, arguments, state) as one frame. The parent enforces the wall clock: a call
that does not answer in time is killed with its whole jail, reported as ``killed: ...`` and the next call
gets a fresh worker. State commit is the parent's job too: the caller's state object never reaches tool
code, and a failed call returns the state it was given.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import struct
import subprocess
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# relative on purpose: runtime, jail, static_check and worker use nothing but the standard library
from .jail import SandboxUnavailable, default_isolation, worker_launch
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
        self.proc = subprocess.Popen(
            [*command, limits.worker_json(support.seccomp_library)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, start_new_session=True, close_fds=True, bufsize=0,
        )
        self.jailed = support.namespaces
        self.wfd = self.proc.stdin.fileno()
        self.rfd = self.proc.stdout.fileno()
        self.loaded: set[str] = set()
        self.sessions_seen = _SessionMemo()
        self.buffer = bytearray()
        self.poller = select.poll()
        self.poller.register(self.rfd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self.hello: dict = {}

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
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def send(self, payload: bytes) -> None:
        data = _HEADER.pack(len(payload)) + payload
        view = memoryview(data)
        while view:
            n = os.write(self.wfd, view)
            view = view[n:]

    def recv(self, deadline: float, max_bytes: int) -> bytes:
        """One response frame; raises TimeoutError at the deadline, EOFError when the worker died."""
        need = _HEADER.size
        size = None
        while True:
            if size is None and len(self.buffer) >= _HEADER.size:
                (size,) = _HEADER.unpack_from(self.buffer)
                if size > max_bytes:
                    raise OverflowError(f"response of {size} bytes exceeds the limit of {max_bytes}")
                need = _HEADER.size + size
            if size is not None and len(self.buffer) >= need:
                body = bytes(self.buffer[_HEADER.size:need])
                del self.buffer[:need]
                return body
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if not self.poller.poll(remaining * 1000.0):
                raise TimeoutError
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


class Runtime:
    """Runs tool functions of checked modules, each module in its own jailed worker (thread-safe, serial).

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
        with self._lock:
            while self._workers:
                _, worker = self._workers.popitem()
                worker.kill()

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
    def _exchange(self, worker: _WorkerProcess, request: dict, state_text: str | None = None) -> dict:
        payload = json.dumps(request, separators=(",", ":"), ensure_ascii=True)
        if state_text is not None:
            # the worker compares its state after the call with this text to see whether it changed
            payload += "\n" + state_text
        deadline = time.monotonic() + self.limits.wall_seconds
        worker.send(payload.encode("utf-8"))
        body = worker.recv(deadline, self.limits.max_state_bytes + self.limits.max_output_bytes
                           + 4 * self.limits.max_error_chars + 1024)
        meta, sep, new_state = body.partition(b"\n")
        response = json.loads(meta)
        if sep:
            response["state_text"] = new_state.decode("utf-8")
        return response

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

    def call(self, mid: str, tool: str, arguments: dict, state: dict) -> RawResult:
        """Run ``tool(state, **arguments)`` of module ``mid`` on a private copy of ``state``."""
        try:
            text = json.dumps(state, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            return RawResult(ok=False, error=f"the state is not JSON: {exc}", state=state)
        raw = self._call(mid, tool, arguments, text, None)
        if raw.ok:
            raw.state = state if raw.state_text is None else json.loads(raw.state_text)
        else:
            raw.state = state
        return raw

    def session_call(self, mid: str, sid: str, tool: str, arguments: dict, state_text: str) -> RawResult:
        """Like call, for a session whose current state (``state_text``) the worker may already hold.

        ``raw.state_text`` is the new state's JSON text when the call changed it, else None.
        """
        return self._call(mid, tool, arguments, state_text, sid)

    def _call(self, mid: str, tool: str, arguments: dict, state_text: str, sid: str | None) -> RawResult:
        source = self._sources.get(mid)
        if source is None:
            raise KeyError(f"module {mid} is not registered with this runtime")
        if not isinstance(arguments, dict):
            return RawResult(ok=False, error=f"arguments must be a JSON object, got {type(arguments).__name__}")
        bad = _lone_surrogate(arguments)
        if bad is not None:
            return RawResult(ok=False, error=f"an argument contains a lone surrogate ({bad}), which is not "
                                             "valid Unicode", meta={"tool_error": False})
        try:
            state_text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return RawResult(ok=False, error="the state contains a lone surrogate "
                                             f"(U+{ord(exc.object[exc.start]):04X}), which is not valid Unicode")
        with self._lock:
            for attempt in range(2):
                worker = self._ensure_worker(mid)
                try:
                    if mid not in worker.loaded:
                        loaded = self._exchange(worker, {"op": "load", "mid": mid, "source": source})
                        if not loaded.get("ok"):
                            if loaded.get("fatal"):
                                self._replace_worker(mid)
                                return RawResult(ok=False, error=loaded.get("error"), killed=True)
                            return RawResult(ok=False, error=loaded.get("error"))
                        worker.loaded.add(mid)
                    request = {"op": "call", "mid": mid, "tool": tool, "args": arguments}
                    if sid is not None:
                        request["sid"] = sid
                    ship = sid is None or (sid, state_text) not in worker.sessions_seen
                    response = self._exchange(worker, request, state_text if ship else None)
                    if response.get("reseed"):
                        response = self._exchange(worker, request, state_text)
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
        with self._lock:
            if mid is None:
                worker = _WorkerProcess(self.limits)
                try:
                    worker.handshake(self.limits)
                    return dict(worker.hello, jailed=worker.jailed)
                finally:
                    worker.kill()
            worker = self._ensure_worker(mid)
            return dict(worker.hello, jailed=worker.jailed)


__all__ = ["Limits", "ModuleRejected", "RawResult", "Runtime", "SandboxUnavailable", "module_id"]
