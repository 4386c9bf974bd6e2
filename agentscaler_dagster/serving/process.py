"""A model server as a child process whose lifecycle we own: start, wait until healthy, stop.

The server runs in its own process group (vLLM forks an engine process per API server), so one
signal to the group reaches every process it made. On Linux the leader also gets SIGTERM when this
process dies (``PR_SET_PDEATHSIG``, from a thread that lasts as long as the process): a killed Dagster
step leaves no server behind.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from agentscaler_dagster.sandbox.spawn import start_lasting

_LIVE: "set[ManagedServer]" = set()
_LIVE_LOCK = threading.Lock()


class ServerStartError(RuntimeError):
    """The server did not become healthy: says what was run, where, and the end of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
        except OSError:
            pass


def group_alive(pgid: int) -> bool:
    """Whether any process (zombies aside) is left in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie leader still counts; reap-independent check through /proc when available
    proc = Path("/proc")
    if not proc.exists():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


class ManagedServer:
    """One OpenAI-compatible server process. Use as a context manager, or ``start()`` / ``stop()``.

    ``command`` must make the server listen on ``host:port``; ``base_url`` is ``http://host:port/v1``.
    """

    def __init__(
        self,
        command: list[str],
        *,
        host: str,
        port: int,
        served_model: str,
        env: dict[str, str] | None = None,
        startup_timeout_s: float = 600.0,
        log_path: str | Path | None = None,
        name: str = "server",
    ):
        self.command = [str(c) for c in command]
        self.host, self.port = host, port
        self.served_model = served_model
        self.env = dict(env or {})
        self.startup_timeout_s = startup_timeout_s
        self.log_path = Path(log_path) if log_path else None
        self.name = name
        self.startup_s: float | None = None
        self.last_pid: int | None = None  # the group id of the latest start, kept after stop (tests, logs)
        self._proc: subprocess.Popen | None = None
        self._log = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-chars:]
        return "(no log file)"

    def start(self) -> "ManagedServer":
        """Start the process and block until ``/v1/models`` answers 200, or raise ServerStartError."""
        if self.running:
            return self
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")
        started = time.monotonic()
        try:
            # the parent-death signal follows the starting thread: started from one that lasts as long as this
            # process, a server started from a short-lived thread (a pool, a notebook) is not stopped with it
            self._proc = start_lasting(lambda: subprocess.Popen(
                self.command,
                env={**os.environ, **self.env},
                stdout=self._log or subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            ))
        except OSError as exc:
            self._close_log()
            raise ServerStartError(f"{self.name}: could not run {self.command[0]!r} ({exc}); command: {' '.join(self.command)}") from exc
        self.last_pid = self._proc.pid
        with _LIVE_LOCK:
            _LIVE.add(self)
        try:
            self._wait_healthy(started)
        except BaseException:
            # a failed or interrupted start must not leave a half-started server
            self.stop()
            raise
        self.startup_s = round(time.monotonic() - started, 2)
        return self

    def _wait_healthy(self, started: float) -> None:
        url = f"{self.base_url}/models"
        last = "no answer yet"
        while True:
            code = self._proc.poll()
            if code is not None:
                raise ServerStartError(
                    f"{self.name} exited with code {code} before {url} answered; command: {' '.join(self.command)}\n"
                    f"log ({self.log_path}):\n{self.log_tail()}"
                )
            try:
                response = httpx.get(url, timeout=2.0)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            if time.monotonic() - started > self.startup_timeout_s:
                raise ServerStartError(
                    f"{self.name} did not answer {url} within {self.startup_timeout_s:.0f} s (last: {last}); "
                    f"command: {' '.join(self.command)}\nlog ({self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.5)

    def stop(self, *, grace_s: float = 30.0) -> None:
        """SIGTERM to the whole group, then SIGKILL to whatever is left after ``grace_s``."""
        proc, self._proc = self._proc, None
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if proc is not None:
            pgid = proc.pid  # start_new_session: the leader's pid is the group id
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
            deadline = time.monotonic() + 5
            while group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if group_alive(pgid):
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "ManagedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for server in live:
        server.stop(grace_s=10)
