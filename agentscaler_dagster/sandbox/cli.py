"""`agentscaler sandbox-check` and `agentscaler sandbox-run`: the sandbox from the command line.

sandbox-check FILE.py                      exit 0 when the module is accepted, 1 with the reasons otherwise
sandbox-run FILE.py TOOL --args JSON --state STATE.json
                                           prints ONE JSON object {"ok", "output", "error", "state"} and exits
                                           0 even when the call failed, was killed or the module was rejected;
                                           exits 2 with a one-line reason when it cannot run at all (bad
                                           options, unreadable files, no jail on this machine)
sandbox-run ... --no-static-check          UNSAFE: skips the static check so the jail alone must contain the
                                           module. For testing the jail; never for code you do not trust.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agentscaler_dagster.contracts import canonical_json
from agentscaler_dagster.sandbox.jail import ISOLATION_LEVELS, SandboxUnavailable, default_isolation
from agentscaler_dagster.sandbox.runtime import Limits, ModuleRejected, Runtime
from agentscaler_dagster.sandbox.static_check import check_module, tool_functions


def _check(args: argparse.Namespace) -> int:
    try:
        source = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"rejected: cannot read {args.file}: {exc}")
        return 1
    problems = check_module(source)
    if problems:
        print(f"rejected: {args.file}")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    names = tool_functions(source)
    print(f"accepted: {args.file} ({len(names)} tools: {', '.join(names)})")
    return 0


def _emit(ok: bool, output, error, state) -> int:
    # the state printed is the one given or the one the call committed; both came through JSON already
    print(canonical_json({"ok": ok, "output": output, "error": error, "state": state}))
    return 0


class _CannotRun(Exception):
    """sandbox-run cannot start: exit 2 with this one-line reason."""


def _inputs(args: argparse.Namespace) -> tuple[str, dict, Limits]:
    try:
        source = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _CannotRun(f"cannot read {args.file}: {exc}") from None
    state: dict = {}
    if args.state:
        try:
            state = json.loads(Path(args.state).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _CannotRun(f"--state {args.state}: {exc}") from None
        if not isinstance(state, dict):
            raise _CannotRun(f"--state {args.state}: the state must be a JSON object, got {type(state).__name__}")
    if args.memory_mb < 64:
        raise _CannotRun(f"--memory-mb must be at least 64 (the interpreter alone needs about 30), got {args.memory_mb}")
    try:
        limits = Limits(wall_seconds=args.wall_seconds, cpu_seconds=args.cpu_seconds,
                        memory_bytes=args.memory_mb * 1024 * 1024, max_output_bytes=args.max_output_bytes,
                        isolation=args.isolation or default_isolation())
    except ValueError as exc:
        message = str(exc)
        for field, option in (("wall_seconds", "--wall-seconds"), ("cpu_seconds", "--cpu-seconds"),
                              ("max_output_bytes", "--max-output-bytes")):
            message = message.replace(f"Limits.{field}", option)
        raise _CannotRun(message) from None
    return source, state, limits


def _run(args: argparse.Namespace) -> int:
    try:
        source, state, limits = _inputs(args)
    except _CannotRun as exc:
        print(f"sandbox-run: {exc}", file=sys.stderr)
        return 2
    try:
        arguments = json.loads(args.args)
    except json.JSONDecodeError as exc:
        return _emit(False, None, f"Error: --args is not valid JSON: {exc}", state)
    if not isinstance(arguments, dict):
        return _emit(False, None, "Error: --args must be a JSON object", state)
    with Runtime(limits, static_check=not args.no_static_check) as runtime:
        try:
            mid = runtime.register(source)
        except ModuleRejected as exc:
            return _emit(False, None, "rejected: " + "; ".join(exc.problems), state)
        if not args.no_static_check:
            names = tool_functions(source)
            if args.tool not in names and "tool_" + args.tool not in names:
                available = ", ".join(names)
                return _emit(False, None, f"Error: tool '{args.tool}' not found; available tools: {available}",
                             state)
        try:
            result = runtime.call(mid, args.tool, arguments, state)
        except SandboxUnavailable as exc:
            print(f"sandbox-run: {exc}", file=sys.stderr)
            return 2
    if result.ok:
        return _emit(True, result.output, None, result.state)
    error = result.error or "the call failed"
    if not result.killed and not error.startswith("Error:"):
        error = f"Error: {error}"
    return _emit(False, None, error, state)


def register(subparsers) -> None:
    check = subparsers.add_parser("sandbox-check", help="statically check a tool module (exit 0 accepted, 1 rejected)")
    check.add_argument("file", metavar="FILE.py")
    check.set_defaults(func=_check)

    run = subparsers.add_parser("sandbox-run", help="run one tool of a module in the sandbox; prints one JSON object")
    run.add_argument("file", metavar="FILE.py")
    run.add_argument("tool", metavar="TOOL")
    run.add_argument("--args", default="{}", metavar="JSON", help="the tool's arguments as a JSON object")
    run.add_argument("--state", default=None, metavar="STATE.json", help="the state file (default: {})")
    run.add_argument("--wall-seconds", type=float, default=5.0)
    run.add_argument("--cpu-seconds", type=float, default=2.0)
    run.add_argument("--memory-mb", type=int, default=512)
    run.add_argument("--max-output-bytes", type=int, default=1_000_000)
    run.add_argument("--isolation", choices=ISOLATION_LEVELS, default=None,
                     help="strict (default; namespaces + seccomp or refuse) or weak (what is available, warns); "
                          "default from AGENTSCALER_SANDBOX_ISOLATION")
    run.add_argument("--no-static-check", action="store_true",
                     help="UNSAFE: skip the static check so that only the jail contains the module "
                          "(for testing the jail; never for untrusted code)")
    run.set_defaults(func=_run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentscaler-sandbox")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
