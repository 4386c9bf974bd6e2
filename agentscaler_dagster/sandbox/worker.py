"""The isolated worker: runs untrusted tool code in its own process.

Started by ``runtime.Runtime`` as ``python -I -S worker.py LIMITS_JSON`` (no site, no user paths, no
package import), it speaks length-prefixed JSON frames on fd 0 (requests) and fd 1 (responses; print()
output goes to /dev/null). Limits are set on itself before the first request: address space
(RLIMIT_AS), CPU seconds per call (RLIMIT_CPU, moved forward before every call because the limit counts
the whole process), no new files (RLIMIT_NOFILE, RLIMIT_FSIZE), no children (RLIMIT_NPROC), no core
dumps. The parent enforces the wall clock and replaces a worker that dies.

Requests:  {"op": "load", "mid": str, "source": str}
           {"op": "call", "mid": str, "tool": str, "args": {...}, "state": {...}}
           {"op": "ping"}
           a call frame carries the state after a newline ("<request>\n<state JSON>"); a call with a "sid"
           and no state runs on the state this worker keeps for that session
Responses: '{"ok": true, "output": ...}' + ("\n<state JSON>" when the state changed)
           | {"ok": false, "error": str, "fatal": bool}
"""

from __future__ import annotations

import builtins
import collections
import copy
import datetime
import decimal
import itertools
import json
import math
import os
import re
import resource
import statistics
import struct
import sys

_HEADER = struct.Struct("!I")

_SAFE_BUILTINS = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytes", "chr", "dict", "divmod", "enumerate", "filter",
    "float", "frozenset", "hash", "hex", "int", "isinstance", "iter", "len", "list", "map", "max", "min",
    "next", "oct", "ord", "pow", "range", "repr", "reversed", "round", "set", "slice", "sorted", "str", "sum",
    "tuple", "zip", "True", "False", "None", "NotImplemented", "Ellipsis",
    "ArithmeticError", "AssertionError", "AttributeError", "Exception", "IndexError", "KeyError",
    "LookupError", "OverflowError", "RuntimeError", "StopIteration", "TypeError", "ValueError",
    "ZeroDivisionError", "NotImplementedError", "RecursionError",
)
_MODULES = {
    "json": json, "math": math, "re": re, "datetime": datetime, "copy": copy, "itertools": itertools,
    "collections": collections, "decimal": decimal, "statistics": statistics,
}


def _stateless(source: str) -> bool:
    """True when a module has no module-level data a call could mutate (only imports, functions, classes,
    docstrings and immutable literal constants) and no mutable default arguments."""
    import ast

    tree = ast.parse(source)
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue
        if isinstance(stmt, ast.FunctionDef):
            defaults = stmt.args.defaults + [d for d in stmt.args.kw_defaults if d is not None]
            if all(isinstance(d, ast.Constant) for d in defaults):
                continue
            return False
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and isinstance(stmt.value, ast.Constant):
            continue
        return False
    return True


class ToolError(Exception):
    """A domain error: the agent sees its message as the tool's observation."""


def _guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    # second fence behind the static check: only the allowlisted modules exist for tool code
    if level or name not in _MODULES:
        raise ImportError(f"import of '{name}' is not allowed")
    return _MODULES[name]


def _make_builtins() -> dict:
    safe = {name: getattr(builtins, name) for name in _SAFE_BUILTINS if hasattr(builtins, name)}
    safe["__import__"] = _guarded_import
    safe["__build_class__"] = builtins.__build_class__
    safe["ToolError"] = ToolError
    return safe


class _Worker:
    def __init__(self, limits: dict) -> None:
        self.limits = limits
        self.builtins = _make_builtins()
        self.code: dict[str, object] = {}
        # modules with nothing mutable at module level keep one namespace; others get a fresh one per call
        self.namespaces: dict[str, dict] = {}
        self.sessions: dict[str, str] = {}
        self.max_sessions = int(limits.get("max_sessions", 64))
        self.max_output = int(limits.get("max_output_bytes", 1_000_000))
        self.max_state = int(limits.get("max_state_bytes", 64_000_000))
        self.cpu_per_call = float(limits.get("cpu_seconds", 2.0))
        self.rin = os.fdopen(0, "rb", buffering=1 << 16)
        self.out_fd = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)

    def set_limits(self) -> None:
        mem = int(self.limits.get("memory_bytes", 1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        try:
            resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
        except (ValueError, OSError):
            pass
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (8, 8))
        except (ValueError, OSError):
            pass
        sys.setrecursionlimit(int(self.limits.get("recursion_limit", 2000)))

    def _arm_cpu(self) -> None:
        used = resource.getrusage(resource.RUSAGE_SELF)
        spent = used.ru_utime + used.ru_stime
        # RLIMIT_CPU has whole-second granularity and counts the whole process: move it forward per call
        soft = int(spent + self.cpu_per_call) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))

    def send(self, message: dict) -> None:
        try:
            body = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            body = json.dumps({"ok": False, "error": f"result is not JSON-serialisable: {exc}",
                               "fatal": False}).encode("utf-8")
        data = _HEADER.pack(len(body)) + body
        view = memoryview(data)
        while view:
            n = os.write(self.out_fd, view)
            view = view[n:]

    def recv(self) -> dict | None:
        header = self.rin.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack(header)
        body = self.rin.read(size).decode("utf-8")
        # a call frame is "<request JSON>\n<state JSON>": the state text is kept to tell whether it changed
        meta, sep, state_text = body.partition("\n")
        request = json.loads(meta)
        if sep:
            request["state_text"] = state_text
        return request

    def load(self, mid: str, source: str) -> dict:
        try:
            self.code[mid] = compile(source, f"<tool module {mid[:12]}>", "exec")
        except SyntaxError as exc:
            return {"ok": False, "error": f"module does not compile: {exc}", "fatal": False}
        # executing the body once catches load-time errors early
        try:
            namespace = self._fresh_globals(mid)
        except MemoryError:
            return {"ok": False, "error": "killed: memory limit exceeded while loading the module", "fatal": True}
        except BaseException as exc:
            self.code.pop(mid, None)
            return {"ok": False, "error": f"module failed to load: {type(exc).__name__}: {exc}", "fatal": False}
        if _stateless(source):
            self.namespaces[mid] = namespace
        return {"ok": True}

    def _remember(self, sid: str, state_text: str) -> None:
        self.sessions.pop(sid, None)
        self.sessions[sid] = state_text
        while len(self.sessions) > self.max_sessions:
            self.sessions.pop(next(iter(self.sessions)))

    def _fresh_globals(self, mid: str) -> dict:
        # a fresh namespace per call: a tool cannot carry data from one call to the next in module globals
        namespace = {"__builtins__": self.builtins, "__name__": "tool_module"}
        exec(self.code[mid], namespace)
        return namespace

    def call(self, request: dict) -> dict:
        mid = request["mid"]
        if mid not in self.code:
            return {"ok": False, "error": f"module {mid} is not loaded", "fatal": False, "reload": True}
        tool = request["tool"]
        sid = request.get("sid")
        if "state_text" not in request:
            # a session call: the state stays here between calls, the parent ships only tool and arguments
            if sid not in self.sessions:
                return {"ok": False, "error": "session state is not here", "fatal": False, "reseed": True}
            request["state_text"] = self.sessions[sid]
        elif sid is not None:
            self._remember(sid, request["state_text"])
        try:
            state = json.loads(request["state_text"])  # the tool's private copy: a failure leaves nothing behind
        except MemoryError:
            return {"ok": False, "error": "killed: memory limit exceeded", "fatal": True}
        args = request.get("args") or {}
        try:
            namespace = self.namespaces.get(mid) or self._fresh_globals(mid)
            fn = namespace.get(tool)
            if not callable(fn):
                # the module contract's escape for tool names that cannot be Python names (print, class, ...)
                fn = namespace.get("tool_" + re.sub(r"\W", "_", tool).strip("_"))
            if tool.startswith("_") or not callable(fn):
                return {"ok": False, "error": f"tool module has no function '{tool}'", "fatal": False}
            output = fn(state, **args)
        except ToolError as exc:
            return {"ok": False, "error": str(exc) or "ToolError", "fatal": False, "tool_error": True}
        except MemoryError:
            return {"ok": False, "error": "killed: memory limit exceeded", "fatal": True}
        except RecursionError:
            return {"ok": False, "error": "tool code failed: RecursionError: maximum recursion depth exceeded",
                    "fatal": False}
        except BaseException as exc:  # untrusted code: any failure is the call's result, never the worker's end
            return {"ok": False, "error": f"tool code failed: {type(exc).__name__}: {exc}", "fatal": False}
        try:
            out_text = json.dumps(output, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            if len(out_text) > self.max_output:
                return {"ok": False, "error": f"output too large: {len(out_text)} bytes > limit {self.max_output}",
                        "fatal": False}
            state_text = json.dumps(state, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            if len(state_text) > self.max_state:
                return {"ok": False, "error": f"state too large after the call: {len(state_text)} bytes > limit "
                                              f"{self.max_state}", "fatal": False}
            if not isinstance(state, dict):
                return {"ok": False, "error": "state is no longer a JSON object", "fatal": False}
        except MemoryError:
            return {"ok": False, "error": "killed: memory limit exceeded", "fatal": True}
        except (TypeError, ValueError, RecursionError) as exc:
            return {"ok": False, "error": f"tool returned or stored a non-JSON value: {exc}", "fatal": False}
        if state_text == request.get("state_text"):
            state_text = None  # unchanged: the parent keeps the state it has
        elif sid is not None:
            self._remember(sid, state_text)
        return {"ok": True, "raw": True, "output_text": out_text, "state_text": state_text}

    def send_raw_ok(self, out_text: str, state_text: str) -> None:
        # splice already-encoded parts instead of encoding them twice
        # "<meta JSON>\n<state JSON>": the parent need not parse a state it only keeps
        if state_text is None:
            body = ('{"ok":true,"unchanged":true,"output":' + out_text + "}").encode("utf-8")
        else:
            body = ('{"ok":true,"output":' + out_text + "}\n" + state_text).encode("utf-8")
        if len(body) > self.max_state + self.max_output + 64:
            self.send({"ok": False, "error": "response too large", "fatal": False})
            return
        data = _HEADER.pack(len(body)) + body
        view = memoryview(data)
        while view:
            n = os.write(self.out_fd, view)
            view = view[n:]

    def serve(self) -> None:
        self.set_limits()
        while True:
            try:
                request = self.recv()
            except MemoryError:
                return
            if request is None:
                return
            op = request.get("op")
            if op == "ping":
                self.send({"ok": True, "pid": os.getpid()})
                continue
            if op == "load":
                self._arm_cpu()
                response = self.load(request["mid"], request["source"])
            elif op == "call":
                self._arm_cpu()
                response = self.call(request)
            else:
                response = {"ok": False, "error": f"unknown op {op!r}", "fatal": False}
            if response.get("raw"):
                self.send_raw_ok(response["output_text"], response["state_text"])
            else:
                self.send(response)
            if response.get("fatal"):
                return


def main() -> None:
    limits = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    _Worker(limits).serve()


if __name__ == "__main__":
    main()
