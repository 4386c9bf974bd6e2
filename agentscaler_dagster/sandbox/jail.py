"""The process jail around a sandbox worker: what it is made of, and what happens when a part is missing.

A worker runs inside two barriers of its own, whatever the static check said about the module:

- **bubblewrap** (Debian's ``bubblewrap``): new user, pid, network, IPC, UTS and cgroup namespaces; the
  worker is uid 65534 with no capabilities; the file system is a read-only view of the Python install and
  the system libraries, nothing else (no /tmp, /home, /root, /etc or /proc); the environment is cleared;
  a new session (no terminal to inject into); the jail dies with its parent, and every process inside it
  dies with the worker (the worker's pid namespace ends with it).
- **seccomp** (libseccomp, loaded by the worker through ctypes once its imports are done): a syscall
  allowlist without open, socket, fork/clone/exec, kill or any limit change but its own CPU budget.

Plus resource limits (memory, CPU, output, state size) and the parent's wall clock (``runtime.py``).

Isolation levels (``Limits.isolation`` or ``AGENTSCALER_SANDBOX_ISOLATION``):

- ``strict`` (default): both barriers must be in force, or the runtime raises ``SandboxUnavailable`` naming
  what is missing and how to get it. Untrusted code is never run with less.
- ``weak``: runs with whatever is available and warns once, naming what is missing. For machines that
  cannot have namespaces (some containers); not for code you do not trust.
"""

from __future__ import annotations

import functools
import glob
import logging
import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ISOLATION_ENV = "AGENTSCALER_SANDBOX_ISOLATION"
ISOLATION_LEVELS = ("strict", "weak")
JAIL_WORKER_PATH = "/sandbox/worker.py"
_SECCOMP_DIRS = ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                 "/lib/aarch64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib", "/lib")


class SandboxUnavailable(RuntimeError):
    """A barrier the isolation level requires is missing on this machine."""


def default_isolation() -> str:
    level = os.environ.get(ISOLATION_ENV, "strict").strip().lower() or "strict"
    if level not in ISOLATION_LEVELS:
        raise ValueError(f"{ISOLATION_ENV}={level!r} is not an isolation level; use one of "
                         f"{', '.join(ISOLATION_LEVELS)}")
    return level


def worker_python() -> str:
    """The interpreter binary itself: a venv's python is a symlink, and the jail has no venv."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


@functools.lru_cache(maxsize=None)
def seccomp_library() -> str | None:
    for folder in _SECCOMP_DIRS:
        found = sorted(glob.glob(os.path.join(folder, "libseccomp.so.2*")))
        if found:
            return os.path.realpath(found[0])
    return None


def _read_only_binds(python: str, worker_script: str) -> list[str]:
    prefix = Path(python).resolve().parents[1]  # <prefix>/bin/python3.x
    roots = ["/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin"]
    args: list[str] = []
    for root in roots:
        if os.path.lexists(root):
            # merged-/usr systems have /lib -> usr/lib: keep the link, bind the real folder once
            if os.path.islink(root):
                args += ["--symlink", os.readlink(root), root]
            else:
                args += ["--ro-bind", root, root]
    if not str(prefix).startswith("/usr/") and str(prefix) != "/usr":
        args += ["--ro-bind", str(prefix), str(prefix)]
    seccomp = seccomp_library()
    if seccomp and not seccomp.startswith(("/usr/", "/lib")):
        args += ["--ro-bind", seccomp, seccomp]
    args += ["--ro-bind", worker_script, JAIL_WORKER_PATH]
    return args


def bwrap_command(python: str, worker_script: str) -> list[str]:
    """The jail's command line, without the worker's own arguments."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise FileNotFoundError("bwrap")
    return [
        bwrap, "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534", "--disable-userns",
        "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--clearenv",
        "--setenv", "PYTHONHASHSEED", "0", "--setenv", "LC_ALL", "C.UTF-8",
        *_read_only_binds(python, worker_script), "--dev", "/dev", "--chdir", "/",
        "--", python, "-I", "-S", "-B", JAIL_WORKER_PATH,
    ]


@dataclass(frozen=True)
class JailSupport:
    namespaces: bool
    namespaces_problem: str | None
    seccomp_library: str | None

    def missing(self) -> list[str]:
        gaps = []
        if not self.namespaces:
            gaps.append(f"namespaces ({self.namespaces_problem})")
        if self.seccomp_library is None:
            gaps.append("seccomp (libseccomp.so.2 not found: apt-get install libseccomp2)")
        return gaps


@functools.lru_cache(maxsize=None)
def probe(python: str, worker_script: str) -> JailSupport:
    """Whether bubblewrap can build the jail here (tried once per process) and where libseccomp is."""
    try:
        command = bwrap_command(python, worker_script)
    except FileNotFoundError:
        return JailSupport(False, "bubblewrap is not installed: apt-get install bubblewrap", seccomp_library())
    command = command[: command.index("--") + 1] + [python, "-I", "-S", "-c", "pass"]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return JailSupport(False, f"bubblewrap failed to start: {exc}", seccomp_library())
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        return JailSupport(False, f"bubblewrap cannot create the namespaces here: {reason} (unprivileged user "
                                  "namespaces may be disabled: sysctl kernel.unprivileged_userns_clone=1 or "
                                  "user.max_user_namespaces)", seccomp_library())
    return JailSupport(True, None, seccomp_library())


@functools.lru_cache(maxsize=None)
def _warn_weak(missing: tuple[str, ...]) -> None:
    message = ("sandbox isolation is weak: running tool code without " + "; ".join(missing)
               + ". Do not run untrusted tool modules in this mode.")
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    log.warning(message)


def worker_launch(isolation: str, worker_script: str) -> tuple[list[str], dict, JailSupport]:
    """The argv prefix and environment for one worker, after checking the isolation level can be met."""
    if isolation not in ISOLATION_LEVELS:
        raise ValueError(f"isolation {isolation!r} is not one of {', '.join(ISOLATION_LEVELS)}")
    python = worker_python()
    support = probe(python, worker_script)
    missing = support.missing()
    if missing and isolation == "strict":
        raise SandboxUnavailable(
            "the sandbox cannot jail tool code on this machine: missing " + "; ".join(missing)
            + f". Install what is missing, or set {ISOLATION_ENV}=weak (or Limits(isolation='weak')) to run "
            "with resource limits only, which is unsafe for untrusted code.")
    if missing:
        _warn_weak(tuple(missing))
    env = {"PYTHONHASHSEED": "0", "LC_ALL": "C.UTF-8"}
    if support.namespaces:
        return bwrap_command(python, worker_script), env, support
    return [python, "-I", "-S", "-B", worker_script], env, support
