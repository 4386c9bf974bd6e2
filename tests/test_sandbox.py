"""The sandbox: static check, isolated worker, Environment.call, CLI contract.

Real parts only: real worker processes with real rlimits and wall-clock kills, the real CLI entry point
(`python -m agentscaler_dagster.cli`), hostile modules from tests/hostile_modules/.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentscaler_dagster.contracts import ToolSource, ToolSpec, state_hash
from agentscaler_dagster.sandbox import (
    Environment, Limits, ModuleRejected, Runtime, check_arguments, check_module, module_id,
)

REPO = Path(__file__).resolve().parents[1]
HOSTILE = Path(__file__).resolve().parent / "hostile_modules"
STATIC = sorted(HOSTILE.glob("STATIC_*.py"))
RUNTIME_CASES = sorted(HOSTILE.glob("RUNTIME_*.py"))

GOOD = '''
import json


def get_item(state, **arguments):
    """Look an item up."""
    key = arguments["item_id"]
    item = state.get("items", {}).get(key)
    if item is None:
        raise ToolError(f"item '{key}' not found")
    return item


def add_item(state, **arguments):
    items = state.setdefault("items", {})
    key = f"item-{len(items) + 1}"
    items[key] = {"item_id": key, "name": arguments["name"]}
    return items[key]
'''
STATE = {"items": {"item-1": {"item_id": "item-1", "name": "lamp"}}}
FAST = Limits(wall_seconds=3.0, cpu_seconds=1.0, memory_bytes=256 * 1024 * 1024, max_output_bytes=200_000)


@pytest.fixture(scope="module")
def runtime():
    rt = Runtime(FAST)
    yield rt
    rt.close()


def _good_call_works(rt: Runtime) -> None:
    mid = rt.register(GOOD)
    result = rt.call(mid, "get_item", {"item_id": "item-1"}, STATE)
    assert result.ok and result.output == {"item_id": "item-1", "name": "lamp"}


# --- static check ---------------------------------------------------------------------------------------
def test_good_module_is_accepted():
    assert check_module(GOOD) == []


@pytest.mark.parametrize("path", STATIC, ids=lambda p: p.stem)
def test_hostile_module_is_rejected_statically(path):
    problems = check_module(path.read_text())
    assert problems, f"{path.name} was accepted"
    assert all(isinstance(p, str) and p for p in problems)


def test_static_reasons_name_the_problem():
    assert any("'os'" in p for p in check_module("import os\ndef f(state):\n    return 1\n"))
    assert any("re.sys" in p for p in check_module("import re\ndef f(state):\n    return re.sys\n"))
    assert any("__class__" in p for p in check_module("def f(state):\n    return state.__class__\n"))
    assert any("getattr" in p for p in check_module("def f(state):\n    return getattr(state, 'x')\n"))
    assert any("top-level" in p for p in check_module("while True:\n    pass\ndef f(state):\n    return 1\n"))
    assert any("syntax" in p for p in check_module("def f(:\n"))


def test_allowlisted_modules_and_names_pass():
    src = ("import json\nimport math\nfrom collections import Counter\nimport datetime\n"
           "def f(state, **arguments):\n"
           "    d = datetime.date(2024, 1, 2) + datetime.timedelta(days=1)\n"
           "    return {'d': d.isoformat(), 'c': dict(Counter('aab')), 'r': math.sqrt(4), 'j': json.dumps([1])}\n")
    assert check_module(src) == []


# --- runtime containment ----------------------------------------------------------------------------------
def test_every_runtime_hostile_module_passes_the_static_check():
    for path in RUNTIME_CASES:
        assert check_module(path.read_text()) == [], path.name


@pytest.mark.parametrize("path", RUNTIME_CASES, ids=lambda p: p.stem)
def test_hostile_module_is_contained_at_runtime(runtime, path):
    mid = runtime.register(path.read_text())
    before = state_hash(STATE)
    state = json.loads(json.dumps(STATE))
    result = runtime.call(mid, "escape", {}, state)
    assert not result.ok, f"{path.name} succeeded"
    assert result.error
    assert state_hash(state) == before  # the caller's state is never touched
    if path.stem in ("RUNTIME_infinite_loop", "RUNTIME_memory_bomb", "RUNTIME_regex_dos"):
        assert result.killed and result.error.startswith("killed:"), result.error
    if path.stem == "RUNTIME_huge_output":
        assert "too large" in result.error
    if path.stem == "RUNTIME_state_corruption":
        assert "corrupted" in result.error
    # the run goes on: the next good call succeeds (in a replaced worker where this one died)
    _good_call_works(runtime)


@pytest.mark.parametrize("driver", ["call", "acall"])
def test_worker_killed_between_calls_is_replaced_without_a_failed_call(driver):
    # a worker killed from outside while idle: the next call goes to a fresh worker, and the caller never sees
    # the death (a call only fails with "killed" when its own run killed the worker)
    import asyncio

    rt = Runtime(FAST)
    try:
        mid = rt.register(GOOD)
        assert rt.call(mid, "get_item", {"item_id": "item-1"}, STATE).ok
        pid, restarts = rt.worker_pid, rt.restarts
        wfd = rt._workers[mid].wfd
        os.killpg(pid, signal.SIGKILL)
        poller = select.poll()
        poller.register(wfd, select.POLLOUT)
        deadline = time.monotonic() + 5
        # until the worker's end of the pipe is gone (POLLERR on our end)
        while not any(ev & select.POLLERR for _, ev in poller.poll(10)) and time.monotonic() < deadline:
            pass
        if driver == "call":
            result = rt.call(mid, "get_item", {"item_id": "item-1"}, STATE)
        else:
            result = asyncio.run(rt.acall(mid, "get_item", {"item_id": "item-1"}, STATE))
        assert result.ok and result.output == {"item_id": "item-1", "name": "lamp"}, result.error
        assert rt.worker_pid != pid and rt.restarts == restarts + 1
    finally:
        rt.close()


def test_worker_started_from_a_thread_that_ended_stays_alive():
    # the jail's --die-with-parent is PR_SET_PDEATHSIG, which fires when the thread that started the worker
    # exits: a pool warming its copies from short-lived threads lost them a moment later, and a call in flight
    # came back "killed: by signal SIGKILL" (it did, in a pooled rollout test)
    import threading

    rt = Runtime(FAST)
    try:
        mid = rt.register(GOOD)
        starter = threading.Thread(target=rt.ping, args=(mid,))
        starter.start()
        starter.join()
        worker = rt._workers[mid]
        if not worker.jailed:
            pytest.skip("no bubblewrap jail here: nothing ties the worker to its starting thread")
        pid = worker.proc.pid
        deadline = time.monotonic() + 1.0
        while worker.alive() and time.monotonic() < deadline:  # the signal, if it comes, comes at once
            time.sleep(0.02)
        assert worker.alive(), f"the worker died with code {worker.proc.returncode} after its starting thread ended"
        result = rt.call(mid, "get_item", {"item_id": "item-1"}, STATE)
        assert result.ok, result.error
        assert rt.worker_pid == pid and rt.restarts == 0
    finally:
        rt.close()


def test_killed_worker_is_replaced(runtime):
    _good_call_works(runtime)
    good_pid = runtime.worker_pid
    restarts = runtime.restarts
    src = (HOSTILE / "RUNTIME_infinite_loop.py").read_text() + "\n\ndef fine(state):\n    return 1\n"
    mid = runtime.register(src)
    assert runtime.call(mid, "fine", {}, {}).ok
    loop_pid = runtime.worker_pid
    result = runtime.call(mid, "escape", {}, {})
    assert result.killed and result.error.startswith("killed:")
    assert runtime.call(mid, "fine", {}, {}).ok
    assert runtime.worker_pid != loop_pid and runtime.restarts == restarts + 1
    # each module has its own worker: the good module's worker was never touched
    _good_call_works(runtime)
    assert runtime.worker_pid == good_pid


def test_wall_clock_limit_kills_a_blocked_call():
    # a call that waits without using CPU is caught by the parent's wall clock, not RLIMIT_CPU
    src = "import re\ndef escape(state):\n    return re.match(r'(a|aa)+$', 'a' * 64 + 'b')\n"
    with Runtime(Limits(wall_seconds=0.5, cpu_seconds=30)) as rt:
        result = rt.call(rt.register(src), "escape", {}, {})
        assert result.killed and "wall-clock" in result.error
        _good_call_works(rt)


def test_worker_refuses_imports_even_without_the_static_check():
    # the second fence: a module that skipped the check still cannot import what is not allowlisted
    src = "def escape(state):\n    return __import__('os').getcwd()\n"
    with Runtime(FAST) as rt:
        mid = module_id(src)
        rt._sources[mid] = src  # deliberately bypass register()
        result = rt.call(mid, "escape", {}, {})
        assert not result.ok and "ImportError" in result.error
        src2 = "def escape(state):\n    return open('/etc/hostname').read()\n"
        mid2 = module_id(src2)
        rt._sources[mid2] = src2
        result = rt.call(mid2, "escape", {}, {})
        assert not result.ok and "NameError" in result.error


def test_rejected_module_raises_with_reasons():
    with pytest.raises(ModuleRejected) as info:
        Runtime().register("import os\ndef f(state):\n    return 1\n")
    assert any("'os'" in p for p in info.value.problems)


# --- Environment.call ------------------------------------------------------------------------------------
def _spec(name: str, op: str, props: dict, required: list[str]) -> ToolSpec:
    return ToolSpec(tool_id=name, name=name, description=name, operation=op,
                    source=ToolSource(format="test", file="test_sandbox.py"),
                    parameters={"type": "object", "properties": props, "required": required})


@pytest.fixture(scope="module")
def env():
    specs = [_spec("get_item", "read", {"item_id": {"type": "string"}}, ["item_id"]),
             _spec("add_item", "write", {"name": {"type": "string"}}, ["name"])]
    e = Environment(domain_id="items", tool_specs=specs, source=GOOD, initial_states={"s": STATE}, limits=FAST)
    yield e
    e.close()


def test_environment_call_commits_only_on_success(env):
    state = env.initial_state()
    h0 = state_hash(state)
    added = env.call(state, "add_item", {"name": "desk"})
    assert added.ok and added.output == {"item_id": "item-2", "name": "desk"}
    assert state_hash(state) == h0, "the caller's state object must not be mutated"
    assert "item-2" in added.state["items"]
    read = env.call(added.state, "get_item", {"item_id": "item-2"})
    assert read.ok and read.output["name"] == "desk" and state_hash(read.state) == state_hash(added.state)
    missing = env.call(added.state, "get_item", {"item_id": "item-9"})
    assert not missing.ok and missing.error == "Error: item 'item-9' not found"
    assert state_hash(missing.state) == state_hash(added.state)


def test_argument_errors_an_agent_can_act_on(env):
    state = env.initial_state()
    r = env.call(state, "get_item", {})
    assert r.error == "Error: missing required argument 'item_id' for get_item" and r.state is state
    r = env.call(state, "get_item", {"item_id": 3})
    assert not r.ok and "argument 'item_id' must be string, got integer" in r.error
    r = env.call(state, "get_item", {"item_id": "item-1", "color": "red"})
    assert not r.ok and "unknown argument 'color'" in r.error and "item_id" in r.error
    r = env.call(state, "get_itm", {"item_id": "item-1"})
    assert r.error == "Error: tool 'get_itm' not found; available tools: add_item, get_item"


def test_session_carries_state(env):
    session = env.session("s")
    assert session.call("add_item", {"name": "a"}).ok
    assert session.call("add_item", {"name": "b"}).ok
    assert sorted(session.state["items"]) == ["item-1", "item-2", "item-3"]
    assert env.initial_states["s"] == STATE  # initial states are never mutated


def test_check_arguments_types():
    params = {"type": "object", "properties": {"n": {"type": "integer"}, "tags": {"type": "array",
              "items": {"type": "string"}}, "mode": {"type": "string", "enum": ["a", "b"]}}, "required": ["n"]}
    assert check_arguments("t", params, {"n": 1, "tags": ["x"], "mode": "a"}) is None
    assert "must be integer, got boolean" in check_arguments("t", params, {"n": True})
    assert "tags'[1]" in check_arguments("t", params, {"n": 1, "tags": ["x", 2]}) or \
        "[1]" in check_arguments("t", params, {"n": 1, "tags": ["x", 2]})
    assert "must be one of 'a', 'b'" in check_arguments("t", params, {"n": 1, "mode": "c"})


# --- CLI contract --------------------------------------------------------------------------------------
def _entry_point() -> str:
    """The top-level `agentscaler` CLI once every stage's cli module exists; until then this stage's own."""
    import importlib.util

    from agentscaler_dagster.cli import _STAGE_CLIS

    try:
        complete = all(importlib.util.find_spec(name) is not None for name in _STAGE_CLIS)
    except ModuleNotFoundError:
        complete = False
    return "agentscaler_dagster.cli" if complete else "agentscaler_dagster.sandbox.cli"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", _entry_point(), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "good.py").write_text(GOOD)
    (d / "state.json").write_text(json.dumps(STATE))
    (d / "loop.py").write_text((HOSTILE / "RUNTIME_infinite_loop.py").read_text())
    (d / "bad.py").write_text((HOSTILE / "STATIC_import_os.py").read_text())
    return d


def test_cli_sandbox_check(cli_files):
    ok = _cli("sandbox-check", str(cli_files / "good.py"))
    assert ok.returncode == 0, ok.stderr
    bad = _cli("sandbox-check", str(cli_files / "bad.py"))
    assert bad.returncode == 1 and "'os'" in bad.stdout


def test_cli_sandbox_run_contract(cli_files):
    def run(file, tool, args):
        proc = _cli("sandbox-run", str(cli_files / file), tool, "--args", args, "--state",
                    str(cli_files / "state.json"), "--wall-seconds", "1.5")
        assert proc.returncode == 0, proc.stderr
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        assert len(lines) == 1, proc.stdout
        out = json.loads(lines[0])
        assert set(out) == {"ok", "output", "error", "state"}
        return out

    out = run("good.py", "add_item", '{"name": "desk"}')
    assert out["ok"] and out["error"] is None and out["output"]["item_id"] == "item-2"
    assert "item-2" in out["state"]["items"]
    out = run("good.py", "get_item", '{"item_id": "nope"}')
    assert out["ok"] is False and "not found" in out["error"] and out["state"] == STATE
    out = run("loop.py", "escape", "{}")
    assert out["ok"] is False and out["error"].startswith("killed:") and out["state"] == STATE
    out = run("bad.py", "escape", "{}")
    assert out["ok"] is False and "'os'" in out["error"]


def test_session_state_lives_in_the_worker_and_survives_a_kill():
    src = GOOD + "\n\ndef spin(state, **arguments):\n    while True:\n        pass\n"
    specs = [_spec("get_item", "read", {"item_id": {"type": "string"}}, ["item_id"]),
             _spec("add_item", "write", {"name": {"type": "string"}}, ["name"]),
             _spec("spin", "read", {}, [])]
    with Environment(domain_id="items", tool_specs=specs, source=src, initial_states={"s": STATE},
                     limits=Limits(wall_seconds=1.0, cpu_seconds=0.5)) as env:
        session = env.session("s")
        first = session.call("add_item", {"name": "a"})
        assert first.ok and first.output["item_id"] == "item-2"
        assert session.call("get_item", {"item_id": "item-2"}).output["name"] == "a"
        killed = session.call("spin")
        assert not killed.ok and killed.killed and killed.error.startswith("killed:")
        # the replaced worker is seeded from the last committed state
        after = session.call("add_item", {"name": "b"})
        assert after.ok and after.output["item_id"] == "item-3"
        assert sorted(session.state["items"]) == ["item-1", "item-2", "item-3"]
        assert session.call("get_item", {}).error == "Error: missing required argument 'item_id' for get_item"
        # the same walk through the stateless API ends in the same state
        state = env.initial_state("s")
        for name in ("a", "b"):
            state = env.call(state, "add_item", {"name": name}).state
        assert state_hash(state) == session.state_hash


# --- the worker's per-call fast paths keep calls apart ---------------------------------------------------
CARRY_OVER = '''
import json

SEEN = []
TABLE = {"n": 0}
COUNT = 0


def helper(x, acc=[]):
    acc.append(x)
    return len(acc)


def mutate(state, **arguments):
    global COUNT
    COUNT += 1
    SEEN.append(1)
    TABLE["n"] += 1
    json.dumps = None  # the call's own view of json
    helper.__defaults__ = ([1, 2, 3],)
    helper.__code__ = (lambda x, acc=[]: -1).__code__
    helper.mark = 1
    return {"count": COUNT, "seen": len(SEEN), "n": TABLE["n"]}


def look(state, **arguments):
    return {"count": COUNT, "seen": len(SEEN), "n": TABLE["n"], "helper": helper(0),
            "mark": "mark" in helper.__dict__, "dumps": json.dumps([1])}
'''


def test_module_level_objects_views_and_functions_are_fresh_every_call():
    with Runtime(FAST, static_check=False) as rt:
        mid = rt.register(CARRY_OVER)
        fresh = {"count": 0, "seen": 0, "n": 0, "helper": 1, "mark": False, "dumps": "[1]"}
        assert rt.call(mid, "look", {}, {}).output == fresh
        for _ in range(3):
            assert rt.call(mid, "mutate", {}, {}).output == {"count": 1, "seen": 1, "n": 1}
            assert rt.call(mid, "look", {}, {}).output == fresh


def test_state_problem_names_its_path():
    src = 'def corrupt(state, **arguments):\n    state["a"] = [{"b": {"ok": 1}}, {"b": {1: "x"}}]\n    return 1\n'
    with Runtime(FAST) as rt:
        result = rt.call(rt.register(src), "corrupt", {}, {})
    assert result.error == ("tool corrupted the state or output: the state['a'][1]['b'] has a key 1 of type int: "
                            'JSON object keys are strings, so it would collide with or turn into the string "1"')


def test_worker_writes_its_error_texts_with_code_no_tool_can_reach():
    # between a tool's run and the freezer's restore the worker must not call what tool code could have rewritten:
    # here (static check off, as if it had a hole) the tool swaps json.dumps's code, then leaves a non-string key
    src = ('import json\n\ndef corrupt(state, **arguments):\n'
           '    json.dumps.__code__ = (lambda *a, **k: "rewritten").__code__\n'
           '    state["a"] = {1: "x"}\n    return 1\n\n'
           'def plain(state, **arguments):\n    return json.dumps([1])\n')
    with Runtime(FAST, static_check=False) as rt:
        mid = rt.register(src)
        result = rt.call(mid, "corrupt", {}, {})
        assert not result.ok and "rewritten" not in result.error
        assert result.error.endswith('the string "1"'), result.error
        assert rt.call(mid, "plain", {}, {}).output == "[1]"  # and the freezer restored it for the next call
        # the module body runs before the worker maps a tool name that is no Python name to its function
        body = ('import re\nre.sub.__code__ = (lambda *a, **k: "rewritten").__code__\n\n'
                'def tool_get_item(state, **arguments):\n    return "found"\n')
        assert rt.call(rt.register(body), "get-item", {}, {}).output == "found"


def test_cpu_limit_holds_for_a_late_call_after_many_cheap_ones():
    # the worker moves RLIMIT_CPU forward only when the process's CPU time has moved it: calls that together
    # pass the first limit still run, and a hungry call after them is still killed at its own budget
    src = ("def cheap(state, **arguments):\n    return 1\n\n"
           "def work(state, **arguments):\n    for _ in range(8):\n        sum(range(10 ** 6))\n    return 2\n\n"
           "def spin(state, **arguments):\n    while True:\n        pass\n")
    limits = Limits(wall_seconds=20.0, cpu_seconds=1.0, memory_bytes=256 * 1024 * 1024)
    with Runtime(limits) as rt:
        mid = rt.register(src)
        for _ in range(300):
            assert rt.call(mid, "cheap", {}, {}).output == 1
        for _ in range(10):  # about 1.5 s of CPU in all, each call well under its budget
            assert rt.call(mid, "work", {}, {}).output == 2
        pid = rt.worker_pid
        result = rt.call(mid, "spin", {}, {})
        assert result.killed and result.error == "killed: CPU time limit of 1s exceeded", result.error
        assert rt.call(mid, "cheap", {}, {}).output == 1 and rt.worker_pid != pid
