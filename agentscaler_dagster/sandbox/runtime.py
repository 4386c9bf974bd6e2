"""Parent side of the sandbox: one long-lived worker process, replaced when a call kills it.

A call ships (module id, tool, arguments, state) as one JSON frame; the worker caches the compiled module
by id, so the source crosses the pipe once per worker. The parent enforces the wall clock: a call that
does not answer in time is killed with its whole process group, reported as ``killed: ...`` and the next
call gets a fresh worker. State commit is the parent's job too: the caller's state object never reaches
tool code, and a failed call returns the state it was given.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentscaler_dagster.sandbox.static_check import check_module

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

    def worker_json(self) -> str:
        return json.dumps({
            "cpu_seconds": self.cpu_seconds, "memory_bytes": self.memory_bytes,
            "max_output_bytes": self.max_output_bytes, "max_state_bytes": self.max_state_bytes,
            "recursion_limit": self.recursion_limit,
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
        env = {"PYTHONHASHSEED": "0", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
        # own session: a kill reaches everything the worker might have started
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", _WORKER_SCRIPT, limits.worker_json()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, start_new_session=True, close_fds=True, bufsize=0,
        )
        self.wfd = self.proc.stdin.fileno()
        self.rfd = self.proc.stdout.fileno()
        self.loaded: set[str] = set()
        self.sessions_seen = _SessionMemo()
        self.buffer = bytearray()
        self.poller = select.poll()
        self.poller.register(self.rfd, select.POLLIN | select.POLLHUP | select.POLLERR)

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


class Runtime:
    """Runs tool functions of checked modules in one isolated worker process (thread-safe, serial)."""

    def __init__(self, limits: Limits | None = None):
        self.limits = limits or Limits()
        self._worker: _WorkerProcess | None = None
        self._lock = threading.Lock()
        self._checked: dict[str, list[str]] = {}
        self._sources: dict[str, str] = {}
        self.restarts = 0

    # --- module registry ---------------------------------------------------------------------------
    def register(self, source: str) -> str:
        """Statically check a module and return its id; raises ModuleRejected with the reasons."""
        mid = module_id(source)
        if mid not in self._checked:
            self._checked[mid] = check_module(source)
        if self._checked[mid]:
            raise ModuleRejected(self._checked[mid])
        self._sources[mid] = source
        return mid

    # --- worker lifecycle ------------------------------------------------------------------------------
    def _ensure_worker(self) -> _WorkerProcess:
        if self._worker is None or not self._worker.alive():
            if self._worker is not None:
                self._worker.kill()
                self.restarts += 1
            self._worker = _WorkerProcess(self.limits)
        return self._worker

    def _replace_worker(self) -> None:
        if self._worker is not None:
            self._worker.kill()
            self._worker = None
            self.restarts += 1

    def close(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.kill()
                self._worker = None

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten runtime must not leave a process behind
        try:
            if self._worker is not None:
                self._worker.kill()
        except Exception:
            pass

    @property
    def worker_pid(self) -> int | None:
        return self._worker.proc.pid if self._worker is not None else None

    # --- calls -----------------------------------------------------------------------------------------
    def _exchange(self, worker: _WorkerProcess, request: dict, state_text: str | None = None) -> dict:
        payload = json.dumps(request, separators=(",", ":"), ensure_ascii=True)
        if state_text is not None:
            # the worker compares its state after the call with this text to see whether it changed
            payload += "\n" + state_text
        deadline = time.monotonic() + self.limits.wall_seconds
        worker.send(payload.encode("utf-8"))
        body = worker.recv(deadline, self.limits.max_state_bytes + self.limits.max_output_bytes + 1024)
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
        if code is not None and code < 0:
            sig = -code
            if sig == signal.SIGXCPU:
                return f"killed: CPU time limit of {self.limits.cpu_seconds:g}s exceeded"
            if sig == signal.SIGKILL:
                return f"killed: by signal SIGKILL (likely CPU time or memory limit of {self.limits.memory_bytes} bytes)"
            return f"killed: by signal {signal.Signals(sig).name}"
        return f"killed: worker exited with code {code}"

    def call(self, mid: str, tool: str, arguments: dict, state: dict) -> RawResult:
        """Run ``tool(state, **arguments)`` of module ``mid`` on a private copy of ``state``."""
        text = json.dumps(state, separators=(",", ":"), ensure_ascii=False)
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
        with self._lock:
            for attempt in range(2):
                worker = self._ensure_worker()
                try:
                    if mid not in worker.loaded:
                        loaded = self._exchange(worker, {"op": "load", "mid": mid, "source": source})
                        if not loaded.get("ok"):
                            if loaded.get("fatal"):
                                self._replace_worker()
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
                    self._replace_worker()
                    return RawResult(ok=False, killed=True,
                                     error=f"killed: wall-clock limit of {self.limits.wall_seconds:g}s exceeded")
                except OverflowError as exc:
                    self._replace_worker()
                    return RawResult(ok=False, killed=True, error=f"killed: {exc}")
                except (EOFError, BrokenPipeError, ConnectionResetError):
                    reason = self._death_reason(worker)
                    self._replace_worker()
                    if attempt == 0 and worker.loaded == set() and "exited with code 0" in reason:
                        continue  # the worker died before it heard us: try a fresh one once
                    return RawResult(ok=False, killed=True, error=reason)
                if response.get("reload"):
                    worker.loaded.discard(mid)
                    continue
                if response.get("fatal"):
                    self._replace_worker()
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

    def ping(self) -> int:
        with self._lock:
            worker = self._ensure_worker()
            return int(self._exchange(worker, {"op": "ping"})["pid"])
