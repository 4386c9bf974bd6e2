"""Environment runtime throughput: tool calls per second through the sandbox worker.

Run: .venv/bin/python benchmarks/bench_runtime.py [--calls 5000] [--append]

Side by side in one process pinned to one core (the worker inherits the pin):
  sandbox      Environment.call -> argument check -> long-lived jailed worker (bubblewrap namespaces +
               seccomp, fresh module namespace per call; JSON frames over a pipe)
  unjailed     the same worker started without bubblewrap and without its seccomp filter (rlimits only,
               as the worker was before the jail)
  in-process   the same module exec'd in this process, called on a deep copy (no isolation at all)
  per-call     a fresh jailed worker per call (what isolation costs without a long-lived worker)
The call mix is a retail walk: get_order, list_products, get_customer, create_order, cancel_order (on the
order just created), list_orders; state carried from call to call, as in a rollout.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentscaler_dagster.contracts import Domain, ToolSource, ToolSpec  # noqa: E402
from agentscaler_dagster.envgen import build_environment  # noqa: E402
from agentscaler_dagster.sandbox import Environment, Runtime  # noqa: E402


def retail_tools() -> list[ToolSpec]:
    src = ToolSource(format="bench", file="bench_runtime.py", api_title="Retail")
    s, i = {"type": "string"}, {"type": "integer"}

    def tool(name, op, props, req):
        return ToolSpec(tool_id=name, name=name, description=name.replace("_", " "), operation=op, source=src,
                        parameters={"type": "object", "properties": props, "required": req})

    return [
        tool("list_products", "read", {"category": s, "limit": i}, []),
        tool("get_order", "read", {"order_id": s}, ["order_id"]),
        tool("list_orders", "read", {"customer_id": s}, []),
        tool("get_customer", "read", {"customer_id": s}, ["customer_id"]),
        tool("create_order", "write", {"customer_id": s, "product_id": s, "quantity": i},
             ["customer_id", "product_id", "quantity"]),
        tool("cancel_order", "write", {"order_id": s}, ["order_id"]),
    ]


def walk(call, state: dict, n: int) -> tuple[dict, int]:
    ok = 0
    order_ids = sorted(state["orders"])
    customer = sorted(state["customers"])[0]
    product = sorted(state["products"])[0]
    for k in range(n):
        step = k % 6
        if step == 0:
            r = call(state, "get_order", {"order_id": order_ids[k % len(order_ids)]})
        elif step == 1:
            r = call(state, "list_products", {"limit": 3})
        elif step == 2:
            r = call(state, "get_customer", {"customer_id": customer})
        elif step == 3:
            r = call(state, "create_order", {"customer_id": customer, "product_id": product, "quantity": 2})
            created = r.output["order_id"] if r.ok else order_ids[0]
        elif step == 4:
            r = call(state, "cancel_order", {"order_id": created})
        else:
            r = call(state, "list_orders", {"customer_id": customer})
        ok += r.ok
        state = r.state
        if step == 5 and len(state["orders"]) > 60:  # keep the state rollout-sized
            state = copy.deepcopy(start_state)
    return state, ok


class _InProcess:
    """The baseline without isolation: exec the module here and call it on a deep copy."""

    def __init__(self, source: str):
        from agentscaler_dagster.sandbox.worker import ToolError, _make_builtins

        import builtins

        self.error = ToolError
        own = _make_builtins()
        own["__import__"] = builtins.__import__  # no isolation at all: the real modules
        self.namespace = {"__builtins__": own}
        exec(compile(source, "tools_module.py", "exec"), self.namespace)

    def __call__(self, state, name, args):
        from agentscaler_dagster.sandbox.environment import ToolCallResult

        work = copy.deepcopy(state)
        try:
            out = self.namespace[name](work, **args)
        except self.error as exc:
            return ToolCallResult(False, None, str(exc), state)
        return ToolCallResult(True, out, None, work)


def _cpu_self() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cpu_pid(pid: int) -> float:
    """CPU seconds of a process and its descendants (the jail's worker is bubblewrap's grandchild)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = int(fields[1])
            times[int(entry)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == current)
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--per-call", type=int, default=60, help="calls for the process-per-call baseline")
    parser.add_argument("--append", action="store_true", help="append the result to benchmarks/RESULTS.md")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    global start_state
    with tempfile.TemporaryDirectory() as tmp:
        tools = retail_tools()
        build_environment(Domain(domain_id="bench_retail", label="retail", tool_ids=[t.tool_id for t in tools]),
                          tools, Path(tmp) / "env", seed=3, n_states=2)
        env = Environment.load(Path(tmp) / "env")
        start_state = env.initial_state("state_1")
        env.call(start_state, "get_order", {"order_id": sorted(start_state["orders"])[0]})  # warm the worker

        rows = []
        cpu0, wcpu0 = _cpu_self(), _cpu_pid(env.runtime.worker_pid)
        t0 = time.perf_counter()
        _, ok = walk(env.call, copy.deepcopy(start_state), args.calls)
        dt = time.perf_counter() - t0
        cpu_per_call = (_cpu_self() - cpu0 + _cpu_pid(env.runtime.worker_pid) - wcpu0) / args.calls
        rows.append(("sandbox (long-lived worker)", args.calls, ok, dt))

        class _SessionCaller:
            """Environment.session: the state stays in the worker, only changes come back."""

            def __init__(self):
                self.session = None

            def __call__(self, state, name, arguments):
                if self.session is None or self.session.state is not state:
                    self.session = env.session(state)
                result = self.session.call(name, arguments)
                return result

        t0 = time.perf_counter()
        _, ok_s = walk(_SessionCaller(), copy.deepcopy(start_state), args.calls)
        rows.append(("sandbox session (state kept in the worker)", args.calls, ok_s, time.perf_counter() - t0))

        from agentscaler_dagster.sandbox import jail
        from agentscaler_dagster.sandbox.runtime import Limits

        real_probe = jail.probe
        jail.probe = lambda python, script: jail.JailSupport(False, "benchmark baseline", None)
        try:
            unjailed = Environment.load(Path(tmp) / "env", limits=Limits(isolation="weak"))
            unjailed.call(start_state, "get_order", {"order_id": sorted(start_state["orders"])[0]})
        finally:
            jail.probe = real_probe
        t0 = time.perf_counter()
        _, ok_u = walk(unjailed.call, copy.deepcopy(start_state), args.calls)
        rows.append(("same worker unjailed (no bubblewrap, no seccomp)", args.calls, ok_u,
                     time.perf_counter() - t0))
        unjailed.close()

        direct = _InProcess(env.source)
        t0 = time.perf_counter()
        _, ok_direct = walk(direct, copy.deepcopy(start_state), args.calls)
        rows.append(("in-process direct call (no isolation)", args.calls, ok_direct, time.perf_counter() - t0))

        def per_call(state, name, arguments):
            with Runtime() as runtime:
                mid = runtime.register(env.source)
                raw = runtime.call(mid, name, arguments, state)
            from agentscaler_dagster.sandbox.environment import ToolCallResult
            return ToolCallResult(raw.ok, raw.output, raw.error, raw.state if raw.ok else state)

        t0 = time.perf_counter()
        _, ok_pc = walk(per_call, copy.deepcopy(start_state), args.per_call)
        rows.append(("one worker process per call", args.per_call, ok_pc, time.perf_counter() - t0))
        env.close()

    direct_rate = rows[3][1] / rows[3][3]
    per_call_rate = rows[4][1] / rows[4][3]
    unjailed_rate = rows[2][1] / rows[2][3]
    lines = ["| mode | calls | ok | seconds | calls/s | ÷ in-process | ÷ unjailed worker | ÷ process-per-call |",
             "|---|---|---|---|---|---|---|---|"]
    for name, n, ok, secs in rows:
        rate = n / secs
        lines.append(f"| {name} | {n} | {ok} | {secs:.3f} | {rate:,.0f} | {rate / direct_rate:.2f} | "
                     f"{rate / unjailed_rate:.2f} | {rate / per_call_rate:.1f} |")
    state_kb = len(__import__("json").dumps(start_state)) / 1024
    header = (f"one core pinned, {platform.python_implementation()} {platform.python_version()}, "
              f"state {state_kb:.1f} KiB shipped per call, CPU: {platform.processor() or platform.machine()}")
    load = os.getloadavg()[0]
    cpu_note = (f"sandbox CPU per call (parent + worker, from rusage and /proc): {cpu_per_call * 1e6:.0f} µs "
                f"-> {1 / cpu_per_call:,.0f} calls/s of one core's CPU time; load average during the run "
                f"{load:.1f} on {os.cpu_count()} cores (wall-clock rates above include waiting for the core)")
    text = "\n".join([header, "", *lines, "", cpu_note])
    print(text)
    if args.append:
        results = Path(__file__).with_name("RESULTS.md")
        existing = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n"
        block = (f"\n## Environment runtime\n\nCommand: `.venv/bin/python "
                 f"benchmarks/bench_runtime.py --calls {args.calls} --append`\n\n{text}\n")
        results.write_text(existing.rstrip("\n") + "\n" + block, encoding="utf-8")


if __name__ == "__main__":
    main()
