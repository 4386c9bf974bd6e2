"""The isolated worker: runs untrusted tool code in its own jailed process.

Started by ``runtime.Runtime`` as ``python -I -S -B worker.py CONFIG_JSON`` (no site, no user paths, no
package import: this file uses the standard library only), normally inside a bubblewrap jail (see
``jail.py``). It speaks length-prefixed frames on fd 0 (requests) and fd 1 (responses); print() output
goes to /dev/null.

Start-up, in this order, while the code running is still ours:
1. import the allowlisted modules (and what they import lazily: ``_strptime``, a few codecs), because
   nothing can be opened from disk later;
2. freeze what tool code could use to reach another call: the allowlisted Python classes become immutable
   types, and the allowlisted Python functions are snapshotted and restored after every call;
3. resource limits on itself: address space (RLIMIT_AS, hard = soft), CPU seconds per call (RLIMIT_CPU,
   moved forward before each call because it counts the whole process), no file creation (RLIMIT_FSIZE),
   no core dumps, few descriptors, no children (RLIMIT_NPROC);
4. a seccomp filter (libseccomp through ctypes; allowlist, everything else fails with EPERM): no open,
   no socket, no fork/clone/exec, no signals to other processes, no raising of any limit but RLIMIT_CPU;
5. a hello frame telling the parent which of these took.

Every call then runs in a fresh namespace (the module body executed again) with its own builtins and its
own read-only views of the allowlisted modules, so a call cannot see what another call or module did.

Requests:  {"op": "load", "mid": str, "source": str}
           {"op": "call", "mid": str, "tool": str, "args": {...}} + "\n<state JSON>" (optional with "sid":
           a call without state text runs on the state this worker keeps for that session)
           {"op": "ping"}
Responses: '{"ok":true,"output":...}' + ("\n<state JSON>" when the state changed)
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
import types

# imported lazily by the allowlisted modules; the jail has no files to import them from later
import _strptime  # noqa: F401  (datetime.strptime)
import time  # noqa: F401  (datetime.strftime)
import heapq  # noqa: F401  (Counter.most_common)
import unicodedata  # noqa: F401  (re: \N{...} escapes)
import warnings  # noqa: F401  (re: deprecation warnings)
import encodings.ascii  # noqa: F401
import encodings.latin_1  # noqa: F401
import encodings.utf_16  # noqa: F401
import encodings.utf_32  # noqa: F401

_HEADER = struct.Struct("!I")
_C_LAZY_IMPORTS = frozenset({"_strptime", "time"})  # datetime.strptime, datetime.strftime

_SAFE_BUILTINS = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytes", "chr", "dict", "divmod", "enumerate", "filter",
    "float", "frozenset", "hash", "hex", "int", "isinstance", "iter", "len", "list", "map", "max", "min",
    "next", "oct", "ord", "pow", "range", "repr", "reversed", "round", "set", "slice", "sorted", "str", "sum",
    "super", "tuple", "zip", "True", "False", "None", "NotImplemented", "Ellipsis",
    "ArithmeticError", "AssertionError", "AttributeError", "Exception", "IndexError", "KeyError",
    "LookupError", "OverflowError", "RuntimeError", "StopIteration", "TypeError", "ValueError",
    "ZeroDivisionError", "NotImplementedError", "RecursionError",
)
_MODULES = {
    "json": json, "math": math, "re": re, "datetime": datetime, "copy": copy, "itertools": itertools,
    "collections": collections, "decimal": decimal, "statistics": statistics,
}

# the syscalls a worker needs once it serves; everything else fails with EPERM
_SYSCALLS_ALLOWED = (
    "read", "write", "readv", "writev", "close", "fstat", "lseek", "mmap", "munmap", "mremap", "mprotect",
    "brk", "madvise", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "futex", "getpid",
    "gettid", "getrusage", "clock_gettime", "clock_getres", "gettimeofday", "time", "exit", "exit_group",
    "getrandom", "dup", "dup2", "dup3", "fcntl", "poll", "ppoll", "select", "pselect6", "sched_yield",
    "nanosleep", "clock_nanosleep", "restart_syscall", "getuid", "geteuid", "getgid", "getegid", "uname",
    "rseq", "set_robust_list", "sysinfo",
)
_RLIMIT_CPU = 0  # the resource number prlimit64 may still change (only for this process)
# built once (json.dumps with options builds an encoder per call); the same output as json.dumps with these
# options, and no code tool calls can reach (json.dumps is theirs too)
_OUTPUT_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_RESPONSE_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False)
# a compiled pattern of the worker's own: the module body (tool code) runs before the name lookup uses it
_NON_WORD = re.compile(r"\W")


class ToolError(Exception):
    """A domain error: the agent sees its message as the tool's observation."""


def _make_builtins() -> dict:
    safe = {name: getattr(builtins, name) for name in _SAFE_BUILTINS if hasattr(builtins, name)}
    safe["__build_class__"] = builtins.__build_class__
    safe["ToolError"] = ToolError
    return safe


def _install_seccomp(library: str) -> str | None:
    """Load the syscall allowlist; returns None when it is in force, else why not."""
    import ctypes

    class _ArgCmp(ctypes.Structure):
        _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                    ("datum_b", ctypes.c_uint64)]

    try:
        lib = ctypes.CDLL(library, use_errno=True)
    except OSError as exc:
        return f"libseccomp cannot be loaded from {library!r}: {exc}"
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    act_allow, act_eperm = 0x7FFF0000, 0x00050000 | 1
    ctx = lib.seccomp_init(act_eperm)  # also sets no_new_privs
    if not ctx:
        return "seccomp_init failed"
    try:
        for name in _SYSCALLS_ALLOWED:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0:
                continue  # not a syscall on this architecture (e.g. 'time' on arm64)
            if lib.seccomp_rule_add_array(ctx, act_allow, number, 0, None) != 0:
                return f"seccomp rule for {name} failed"
        # prlimit64(0, RLIMIT_CPU, ...): the per-call CPU budget is moved forward by this process itself
        cmp_eq = 4
        conds = (_ArgCmp * 2)(_ArgCmp(0, cmp_eq, 0, 0), _ArgCmp(1, cmp_eq, _RLIMIT_CPU, 0))
        number = lib.seccomp_syscall_resolve_name(b"prlimit64")
        if number < 0 or lib.seccomp_rule_add_array(ctx, act_allow, number, 2, conds) != 0:
            return "seccomp rule for prlimit64 failed"
        rc = lib.seccomp_load(ctx)
        if rc != 0:
            return f"seccomp_load failed ({rc})"
    finally:
        lib.seccomp_release(ctx)
    return None


class _Freezer:
    """Keeps the allowlisted modules' Python objects as they were at start-up.

    Classes become immutable types (CPython's Py_TPFLAGS_IMMUTABLETYPE, the flag its own built-in types
    carry), so ``Counter.most_common = f`` raises TypeError. Functions cannot be made immutable; their
    code, defaults and attribute dict are restored after every call instead.
    """

    _IMMUTABLE = 1 << 8

    def __init__(self, allowed: dict[str, list[str]]) -> None:
        self.functions: list[tuple] = []
        self.frozen_classes = 0
        self._seen: set[int] = set()
        self._flags_offset = self._find_flags_offset()
        for module_name, names in allowed.items():
            module = _MODULES[module_name]
            for name in names:
                if hasattr(module, name):
                    self._visit(getattr(module, name))
        self._visit(ToolError)

    @staticmethod
    def _find_flags_offset() -> int | None:
        import ctypes

        class _Probe:
            pass

        for offset in range(8, 512, ctypes.sizeof(ctypes.c_ulong)):
            if ctypes.c_ulong.from_address(id(_Probe) + offset).value == _Probe.__flags__:
                probe2 = type("_Probe2", (Exception,), {})
                if ctypes.c_ulong.from_address(id(probe2) + offset).value == probe2.__flags__:
                    return offset
        return None

    def _freeze_class(self, cls: type) -> None:
        import ctypes

        if cls.__flags__ & self._IMMUTABLE or self._flags_offset is None:
            return
        cell = ctypes.c_ulong.from_address(id(cls) + self._flags_offset)
        if cell.value == cls.__flags__:
            cell.value = cls.__flags__ | self._IMMUTABLE
            self.frozen_classes += 1

    def _visit(self, obj) -> None:
        if id(obj) in self._seen:
            return
        self._seen.add(id(obj))
        if isinstance(obj, types.FunctionType):
            self.functions.append((obj, obj.__code__, obj.__defaults__, obj.__kwdefaults__))
        elif isinstance(obj, (classmethod, staticmethod)):
            self._visit(obj.__func__)
        elif isinstance(obj, property):
            for part in (obj.fget, obj.fset, obj.fdel):
                if part is not None:
                    self._visit(part)
        elif isinstance(obj, type) and obj.__module__ != "builtins":
            for value in list(vars(obj).values()):
                self._visit(value)
            self._freeze_class(obj)
            for base in obj.__mro__[1:]:  # inherited methods are reached through the subclass
                self._visit(base)

    def restore(self) -> None:
        for fn, code, defaults, kwdefaults in self.functions:
            if fn.__code__ is not code:
                fn.__code__ = code
            if fn.__defaults__ is not defaults:
                fn.__defaults__ = defaults
            if fn.__kwdefaults__ is not kwdefaults:
                fn.__kwdefaults__ = kwdefaults
            if fn.__dict__:
                fn.__dict__.clear()


def _json_path(entry: tuple, what: str) -> str:
    """The path of a ``_json_problem`` stack entry, spelled as ``what[key][index]...``."""
    parts = []
    while entry[1] is not None:
        _, entry, part = entry
        # keys on a path are exactly str (checked before their children are pushed), indexes are int
        parts.append(f"[{part!r}]" if type(part) is str else f"[{part}]")
    return what + "".join(reversed(parts))


def _json_problem(value, what: str) -> str | None:
    """Why ``value`` would not survive a JSON round trip unchanged (after json.dumps accepted it).

    Paths are spelled out only for the problem found: each stack entry links to the one it was reached from.
    """
    stack = [(value, None, None)]  # (node, the entry it was reached from, its key or index there)
    push = stack.append
    while stack:
        entry = stack.pop()
        node = entry[0]
        if isinstance(node, dict):
            for key, item in node.items():
                if type(key) is not str:
                    return (f"{_json_path(entry, what)} has a key {key!r} of type {type(key).__name__}: JSON "
                            "object keys are strings, so it would collide with or turn into the string "
                            + _RESPONSE_ENCODER.encode(str(key)))  # not json.dumps: tool code can reach it
                if isinstance(item, (dict, list, tuple)):
                    push((item, entry, key))
        elif isinstance(node, (list, tuple)):
            for index, item in enumerate(node):
                if isinstance(item, (dict, list, tuple)):
                    push((item, entry, index))
    return None


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more characters cut]"


class _Worker:
    def __init__(self, config: dict) -> None:
        self.config = config
        self.allowed: dict[str, tuple[str, ...]] = {m: tuple(names) for m, names in config["allowed"].items()
                                                    if m in _MODULES}
        self.base_builtins = _make_builtins()
        self.code: dict[str, object] = {}
        self.sessions: dict[str, str] = {}
        self.max_sessions = int(config.get("max_sessions", 64))
        self.max_output = int(config.get("max_output_bytes", 1_000_000))
        self.max_state = int(config.get("max_state_bytes", 64_000_000))
        self.max_error = int(config.get("max_error_chars", 8192))
        self.cpu_per_call = float(config.get("cpu_seconds", 2.0))
        self.decimal_context = decimal.getcontext().copy()
        self.rin = os.fdopen(0, "rb", buffering=1 << 16)
        self.out_fd = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
        self.freezer = _Freezer({m: list(n) for m, n in self.allowed.items()})
        # what a module view holds, read once: the allowlisted attributes of modules no call can change
        self._view_items = {name: {n: getattr(_MODULES[name], n) for n in names if hasattr(_MODULES[name], n)}
                            for name, names in self.allowed.items()}
        self._cpu_soft: int | None = None  # the RLIMIT_CPU soft limit this process last set

    # --- what tool code sees -----------------------------------------------------------------------------
    def _module_view(self, name: str) -> types.SimpleNamespace:
        # a fresh, partial view per import: assigning to it changes nothing outside this call
        return types.SimpleNamespace(**self._view_items[name])

    def _fresh_globals(self, mid: str) -> dict:
        views: dict[str, types.SimpleNamespace] = {}

        def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
            # C code of an allowlisted module importing its helper (datetime.strptime -> _strptime) comes
            # through here with an empty *list* as fromlist (PyImport_Import); import statements pass None
            # or a tuple. Tool code cannot write that import past the static check; the jail holds anyway
            if name in _C_LAZY_IMPORTS and type(fromlist) is list and not fromlist and not level:
                return sys.modules[name]
            # second fence behind the static check: only views of the allowlisted modules exist
            if level or name not in self.allowed:
                raise ImportError(f"import of '{name}' is not allowed")
            if name not in views:
                views[name] = self._module_view(name)
            view = views[name]
            for item in fromlist or ():
                if not hasattr(view, item):
                    raise ImportError(f"cannot import name '{item}' from '{name}' (not allowlisted)")
            return view

        own = dict(self.base_builtins)
        own["__import__"] = guarded_import
        namespace = {"__builtins__": own, "__name__": "tool_module"}
        exec(self.code[mid], namespace)
        return namespace

    # --- set-up -------------------------------------------------------------------------------------------
    def set_limits(self) -> None:
        mem = int(self.config.get("memory_bytes", 1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        for limit, value in ((resource.RLIMIT_NPROC, 0), (resource.RLIMIT_NOFILE, 16)):
            try:
                resource.setrlimit(limit, (value, value))
            except (ValueError, OSError):
                pass
        sys.setrecursionlimit(int(self.config.get("recursion_limit", 2000)))

    def _arm_cpu(self) -> None:
        used = resource.getrusage(resource.RUSAGE_SELF)
        spent = used.ru_utime + used.ru_stime
        # RLIMIT_CPU has whole-second granularity and counts the whole process: move it forward per call
        soft = int(spent + self.cpu_per_call) + 1
        # the limit only this process changes (seccomp refuses any other prlimit64) is already where this
        # call needs it in most calls: it moves once per CPU second
        if soft != self._cpu_soft:
            resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
            self._cpu_soft = soft

    # --- frames -------------------------------------------------------------------------------------------
    def _write(self, body: bytes) -> None:
        data = _HEADER.pack(len(body)) + body
        n = os.write(self.out_fd, data)
        if n == len(data):
            return
        view = memoryview(data)[n:]
        while view:
            n = os.write(self.out_fd, view)
            view = view[n:]

    def send(self, message: dict) -> None:
        if isinstance(message.get("error"), str):
            message["error"] = _cap(message["error"], self.max_error)
        try:
            body = _RESPONSE_ENCODER.encode(message).encode("ascii")
        except (TypeError, ValueError) as exc:
            body = json.dumps({"ok": False, "error": f"response is not JSON-serialisable: {exc}",
                               "fatal": False}).encode("ascii")
        self._write(body)

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

    # --- operations ---------------------------------------------------------------------------------------
    def load(self, mid: str, source: str) -> dict:
        try:
            self.code[mid] = compile(source, f"<tool module {mid[:12]}>", "exec")
        except SyntaxError as exc:
            return {"ok": False, "error": f"module does not compile: {exc}", "fatal": False}
        except (ValueError, RecursionError, MemoryError) as exc:
            return {"ok": False, "error": f"module does not compile: {type(exc).__name__}", "fatal": False}
        # executing the body once catches load-time errors early
        try:
            self._fresh_globals(mid)
        except MemoryError:
            return {"ok": False, "error": "killed: memory limit exceeded while loading the module", "fatal": True}
        except BaseException as exc:
            self.code.pop(mid, None)
            return {"ok": False, "error": f"module failed to load: {type(exc).__name__}: {exc}", "fatal": False}
        finally:
            self._after_call()
        return {"ok": True}

    def _remember(self, sid: str, state_text: str) -> None:
        self.sessions.pop(sid, None)
        self.sessions[sid] = state_text
        while len(self.sessions) > self.max_sessions:
            self.sessions.pop(next(iter(self.sessions)))

    def _after_call(self) -> None:
        self.freezer.restore()
        decimal.setcontext(self.decimal_context.copy())

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
            return self._run(mid, tool, args, state, request["state_text"], sid)
        finally:
            self._after_call()

    def _run(self, mid: str, tool: str, args: dict, state, before: str, sid: str | None) -> dict:
        try:
            namespace = self._fresh_globals(mid)
            # a name starting with "_" never reaches a module's private helper, only its tool_<name> function
            fn = None if tool.startswith("_") else namespace.get(tool)
            if not callable(fn):
                # the module contract's escape for tool names that cannot be Python names (print, class, _id, ...)
                fn = namespace.get("tool_" + _NON_WORD.sub("_", tool).strip("_"))
            if not callable(fn):
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
            try:
                detail = str(exc)
            except BaseException:
                detail = "(its message could not be rendered)"
            return {"ok": False, "error": f"tool code failed: {type(exc).__name__}: {detail}", "fatal": False}
        try:
            if not isinstance(state, dict):
                return {"ok": False, "error": "tool corrupted the state: it is no longer a JSON object",
                        "fatal": False}
            out_text = _OUTPUT_ENCODER.encode(output)
            if len(out_text) > self.max_output:
                return {"ok": False, "error": f"output too large: {len(out_text)} bytes > limit {self.max_output}",
                        "fatal": False}
            problem = _json_problem(output, "the output")
            if problem is None:
                out_text.encode("utf-8")
            state_text = _OUTPUT_ENCODER.encode(state)
            if len(state_text) > self.max_state:
                return {"ok": False, "error": f"state too large after the call: {len(state_text)} bytes > limit "
                                              f"{self.max_state}", "fatal": False}
            if problem is None and state_text != before:
                # an unchanged text leaves the caller's state as it was: this call's copy is dropped unread
                problem = _json_problem(state, "the state")
                if problem is None:
                    state_text.encode("utf-8")
        except MemoryError:
            return {"ok": False, "error": "killed: memory limit exceeded", "fatal": True}
        except UnicodeEncodeError as exc:
            return {"ok": False, "error": "tool returned or stored a string with a lone surrogate "
                                          f"(U+{ord(exc.object[exc.start]):04X}), which is not valid Unicode",
                    "fatal": False}
        except (TypeError, ValueError, RecursionError) as exc:
            return {"ok": False, "error": f"tool returned or stored a non-JSON value: {exc}", "fatal": False}
        if problem is not None:
            return {"ok": False, "error": f"tool corrupted the state or output: {problem}", "fatal": False}
        if state_text == before:
            state_text = None  # unchanged: the parent keeps the state it has
        elif sid is not None:
            self._remember(sid, state_text)
        return {"ok": True, "raw": True, "output_text": out_text, "state_text": state_text}

    def send_raw_ok(self, out_text: str, state_text: str | None) -> None:
        # "<meta JSON>\n<state JSON>": already-encoded parts are spliced, the parent need not parse a state
        # it only keeps
        if state_text is None:
            body = ('{"ok":true,"unchanged":true,"output":' + out_text + "}").encode("utf-8")
        else:
            body = ('{"ok":true,"output":' + out_text + "}\n" + state_text).encode("utf-8")
        if len(body) > self.max_state + self.max_output + 64:
            self.send({"ok": False, "error": "response too large", "fatal": False})
            return
        self._write(body)

    def serve(self) -> None:
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
    config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {"allowed": {}}
    worker = _Worker(config)
    worker.set_limits()
    seccomp_error = None
    if config.get("seccomp_library"):
        seccomp_error = _install_seccomp(config["seccomp_library"])
    elif config.get("seccomp", True):
        seccomp_error = "libseccomp was not found"
    worker.send({"ok": True, "hello": True, "pid": os.getpid(), "seccomp": seccomp_error is None,
                 "seccomp_error": seccomp_error, "frozen_classes": worker.freezer.frozen_classes,
                 "guarded_functions": len(worker.freezer.functions)})
    if seccomp_error is not None and config.get("require_seccomp", True):
        return  # the parent refuses to use a worker without its filter unless it asked for the weak mode
    worker.serve()


if __name__ == "__main__":
    main()
