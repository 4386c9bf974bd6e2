"""The jail around sandbox workers, isolation between modules and calls, and the static check's edges.

Real parts: bubblewrap and seccomp as installed by scripts/setup.sh, real worker processes, Debian's
/usr/bin/python3 run as user nobody (setpriv) for the ordinary-user case. The one patched part is the jail
probe, to show what the runtime does on a machine without namespaces or libseccomp.
"""

from __future__ import annotations

import ast
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from agentscaler_dagster.sandbox import Limits, Runtime, SandboxUnavailable, check_module, jail
from agentscaler_dagster.sandbox.static_check import IDENTIFIER_FIELDS

SANDBOX = Path(__file__).resolve().parents[1] / "agentscaler_dagster" / "sandbox"
FAST = Limits(wall_seconds=3.0, cpu_seconds=1.0, memory_bytes=256 * 1024 * 1024)


@pytest.fixture
def no_jail(monkeypatch):
    """This machine as if it had neither bubblewrap nor libseccomp."""
    monkeypatch.setattr(jail, "probe", lambda python, script: jail.JailSupport(
        False, "bubblewrap is not installed: apt-get install bubblewrap", None))
    jail._warn_weak.cache_clear()


# --- the jail is there, and it is what stops an escape ------------------------------------------------
def test_worker_runs_jailed_with_seccomp():
    with Runtime(FAST) as rt:
        hello = rt.ping()
    assert hello["jailed"] is True and hello["seccomp"] is True, hello
    assert hello["pid"] <= 3, "the worker should see its own pid namespace"
    assert hello["frozen_classes"] > 0 and hello["guarded_functions"] > 0


ESCAPE = '''
def attack(state, **arguments):
    try:
        raise ValueError("x")
    except ValueError as exc:
        frame = exc.__traceback__.tb_frame
    while "os" not in frame.f_globals:
        frame = frame.f_back
    os = frame.f_globals["os"]
    if arguments.get("write"):
        fd = os.open(arguments["write"], os.O_CREAT | os.O_WRONLY)
        os.write(fd, b"x")
    if arguments.get("env"):
        return os.environ.get(arguments["env"])
    return os.read(os.open(arguments["read"], os.O_RDONLY), 100).decode()
'''


def test_the_escape_is_real_without_the_jail_and_stopped_with_it(tmp_path, monkeypatch):
    secret = tmp_path / "secret.txt"
    secret.write_text("token-123")
    monkeypatch.setenv("AGENTSCALER_PLANTED", "env-456")
    with Runtime(FAST, static_check=False) as rt:
        mid = rt.register(ESCAPE)
        jailed = rt.call(mid, "attack", {"read": str(secret)}, {})
        assert not jailed.ok and "token-123" not in str(jailed)
        assert "PermissionError" in jailed.error or "FileNotFoundError" in jailed.error
        wrote = rt.call(mid, "attack", {"read": str(secret), "write": str(tmp_path / "out")}, {})
        assert not wrote.ok and not (tmp_path / "out").exists()
        env = rt.call(mid, "attack", {"env": "AGENTSCALER_PLANTED"}, {})
        assert env.ok and env.output is None  # the jail's environment is empty
    # the very same module and worker code, started without bubblewrap and seccomp: the escape works,
    # so the hostile suite measures the jail, not a broken attack
    monkeypatch.setattr(jail, "probe", lambda python, script: jail.JailSupport(False, "test", None))
    jail._warn_weak.cache_clear()
    with pytest.warns(RuntimeWarning):
        rt = Runtime(Limits(wall_seconds=3.0, isolation="weak"), static_check=False)
        mid = rt.register(ESCAPE)
        escaped = rt.call(mid, "attack", {"read": str(secret)}, {})
        rt.call(mid, "attack", {"read": str(secret), "write": str(tmp_path / "out")}, {})
    rt.close()
    # RLIMIT_FSIZE stops the write itself, not the file's creation
    assert escaped.ok and escaped.output == "token-123" and (tmp_path / "out").exists()


def test_strict_refuses_without_namespaces_and_weak_warns(no_jail):
    with pytest.raises(SandboxUnavailable) as info:
        with Runtime(FAST) as rt:
            rt.call(rt.register("def f(state):\n    return 1\n"), "f", {}, {})
    message = str(info.value)
    assert "namespaces" in message and "bubblewrap" in message and "AGENTSCALER_SANDBOX_ISOLATION=weak" in message
    with pytest.warns(RuntimeWarning, match="namespaces.*seccomp"):
        with Runtime(Limits(isolation="weak")) as rt:
            assert rt.call(rt.register("def f(state):\n    return 1\n"), "f", {}, {}).output == 1


def test_strict_refuses_without_seccomp(monkeypatch):
    real = jail.probe(jail.worker_python(), str(SANDBOX / "worker.py"))
    monkeypatch.setattr(jail, "probe", lambda python, script: jail.JailSupport(real.namespaces, None, None))
    with pytest.raises(SandboxUnavailable, match="seccomp"):
        with Runtime(FAST) as rt:
            rt.call(rt.register("def f(state):\n    return 1\n"), "f", {}, {})


def test_isolation_level_from_the_environment(monkeypatch):
    monkeypatch.setenv("AGENTSCALER_SANDBOX_ISOLATION", "weak")
    assert Limits().isolation == "weak"
    monkeypatch.setenv("AGENTSCALER_SANDBOX_ISOLATION", "loose")
    with pytest.raises(ValueError, match="AGENTSCALER_SANDBOX_ISOLATION='loose'"):
        Limits()


def test_jail_works_for_an_ordinary_user():
    """As user nobody, with Debian's python and a copy of the sandbox package: jailed, seccomp on."""
    setpriv, python = shutil.which("setpriv"), "/usr/bin/python3"
    if os.geteuid() != 0 or setpriv is None or not os.path.exists(python):
        pytest.skip("needs root (to become nobody), setpriv and /usr/bin/python3")
    # a folder nobody can enter (pytest's own base folder is private to root)
    root = Path(tempfile.mkdtemp(prefix="agentscaler-nobody-"))
    try:
        root.chmod(0o755)
        package = root / "sbx"
        package.mkdir()
        for name in ("runtime.py", "jail.py", "spawn.py", "static_check.py", "worker.py"):
            shutil.copy(SANDBOX / name, package / name)
        (package / "__init__.py").write_text("")
        secret = root / "secret.txt"
        secret.write_text("nobody-can-read-this")
        script = root / "probe.py"
        script.write_text(
            "import json, sys\n"
            "sys.path.insert(0, sys.argv[1])\n"
            "from sbx.runtime import Limits, Runtime\n"
            "with Runtime(Limits(wall_seconds=5), static_check=False) as rt:\n"
            "    hello = rt.ping()\n"
            "    good = rt.call(rt.register('def f(state, **a):\\n    return len(state)\\n'), 'f', {}, {'a': 1})\n"
            f"    bad = rt.call(rt.register({ESCAPE!r}), 'attack', {{'read': sys.argv[2]}}, {{}})\n"
            "print(json.dumps({'hello': hello, 'good': good.output, 'bad_ok': bad.ok, 'bad': bad.error}))\n")
        for path in (package, *package.iterdir(), script, secret):
            path.chmod(0o755 if path.is_dir() else 0o644)
        proc = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python, str(script),
                               str(root), str(secret)],
                              capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["hello"]["jailed"] and result["hello"]["seccomp"], result
    assert result["good"] == 1
    assert result["bad_ok"] is False and "nobody-can-read-this" not in proc.stdout


# --- isolation between modules and between calls -------------------------------------------------------
COUNTER_USER = '''
from collections import Counter

def top(state, **arguments):
    return Counter("abracadabra").most_common(1)

def size(state, **arguments):
    return len([1, 2, 3])
'''


@pytest.mark.parametrize("static_check", [True, False], ids=["checked", "jail-alone"])
def test_a_module_cannot_change_what_another_module_sees(static_check):
    poisoners = {
        "class attribute through a local name": "import collections\n\ndef poison(state):\n"
        "    counter = collections.Counter\n    counter.most_common = lambda self, n=None: 'poisoned'\n",
        "module attribute": "import collections\n\ndef poison(state):\n    collections.Counter = None\n",
        "builtins": "def poison(state):\n    __builtins__['len'] = lambda x: 42\n",
        "inherited method code": "import collections\n\ndef poison(state):\n"
        "    fn = collections.Counter.most_common\n    fn.__code__ = (lambda self, n=None: 'poisoned').__code__\n",
        "decimal context": "import decimal\n\ndef poison(state):\n"
        "    decimal.localcontext().__enter__().prec = 2\n",
    }
    with Runtime(FAST, static_check=static_check) as rt:
        user = rt.register(COUNTER_USER)
        for label, source in poisoners.items():
            if static_check and check_module(source):
                continue  # the static check already refuses it; the jail-alone run covers it
            mid = rt.register(source)
            rt.call(mid, "poison", {}, {})
            assert rt.call(mid, "poison", {}, {}) is not None  # and once more: nothing is left over
            assert rt.call(user, "top", {}, {}).output == [["a", 5]], label
            assert rt.call(user, "size", {}, {}).output == 3, label


def test_nothing_carries_over_between_calls_of_one_module():
    source = '''
import collections
import decimal
import json

CACHE = []

def remember(state, **arguments):
    CACHE.append(1)
    try:
        remember.calls += 1
    except AttributeError:
        remember.calls = 0
    loads = json.loads
    try:
        loads.marks += 1
    except AttributeError:
        loads.marks = 0
    return {"cache": len(CACHE), "calls": remember.calls, "marks": loads.marks}

def poison(state, **arguments):
    counter = collections.Counter
    try:
        counter.most_common = None
    except TypeError:
        pass
    decimal.localcontext().__enter__().prec = 3
    return 1

def check(state, **arguments):
    return {"prec": str(decimal.Decimal(1) / decimal.Decimal(3)), "top": collections.Counter("aab").most_common(1)}
'''
    with Runtime(FAST, static_check=False) as rt:
        mid = rt.register(source)
        outputs = [rt.call(mid, "remember", {}, {}).output for _ in range(3)]
        assert outputs == [{"cache": 1, "calls": 0, "marks": 0}] * 3
        rt.call(mid, "poison", {}, {})
        after = rt.call(mid, "check", {}, {}).output
        assert after == {"prec": "0.3333333333333333333333333333", "top": [["a", 2]]}


def test_the_static_check_refuses_shared_object_assignment():
    for source in ("import collections\ndef f(state):\n    collections.Counter.most_common = 1\n",
                   "from json import loads\ndef f(state):\n    loads.calls = 1\n",
                   "def f(state):\n    ToolError.code = 3\n"):
        assert any("cannot assign" in p for p in check_module(source)), source


# --- legitimate modules are not refused -------------------------------------------------------------------
BOOKINGS = '''
"""Hotel bookings."""
import datetime
from collections import namedtuple

__all__ = ["create_booking", "get_booking", "booking_nights"]

Stay = namedtuple("Stay", ["check_in", "check_out"])


class BookingNotFound(ToolError):
    def __init__(self, booking_id):
        super().__init__(f"booking '{booking_id}' not found; list the guest's bookings to find its id")
        self.booking_id = booking_id


class Money:
    def __init__(self, cents):
        self.cents = cents

    def __add__(self, other):
        return Money(self.cents + other.cents)

    def __str__(self):
        return f"{self.cents // 100}.{self.cents % 100:02d}"

    def __eq__(self, other):
        return isinstance(other, Money) and other.cents == self.cents


def _stay(arguments):
    stay = Stay(datetime.date.fromisoformat(arguments["check_in"]), datetime.date.fromisoformat(arguments["check_out"]))
    if stay.check_out <= stay.check_in:
        raise ToolError("check_out must be after check_in")
    return stay


def create_booking(state, **arguments):
    stay = _stay(arguments)
    bookings = state.setdefault("bookings", {})
    booking_id = f"bk-{len(bookings) + 1}"
    nights = (stay.check_out - stay.check_in).days
    total = Money(0)
    for _ in range(nights):
        total = total + Money(arguments["nightly_cents"])
    record = {k: v.isoformat() for k, v in stay._asdict().items()}
    record.update(booking_id=booking_id, total=str(total))
    bookings[booking_id] = record
    return record


def get_booking(state, **arguments):
    booking = state.get("bookings", {}).get(arguments["booking_id"])
    if booking is None:
        raise BookingNotFound(arguments["booking_id"])
    return booking


def booking_nights(state, **arguments):
    stay = _stay(arguments)._replace(check_out=datetime.date.fromisoformat(arguments["check_out"]))
    match stay:
        case Stay(check_in=start, check_out=end):
            return (end - start).days
'''

ORDERS = '''
import decimal
from decimal import Decimal, localcontext
from collections import Counter, defaultdict


def order_total(state, **arguments):
    order = state["orders"].get(arguments["order_id"])
    if order is None:
        raise ToolError(f"order '{arguments['order_id']}' not found")
    with localcontext() as ctx:
        ctx.rounding = decimal.ROUND_HALF_UP
        total = sum((Decimal(str(line["price"])) * line["qty"] for line in order["lines"]), Decimal("0"))
        return {"order_id": arguments["order_id"], "total": str(total.quantize(Decimal("0.01")))}


def best_sellers(state, **arguments):
    counts = Counter()
    by_customer = defaultdict(list)
    for order_id, order in sorted(state["orders"].items()):
        by_customer[order["customer"]].append(order_id)
        for line in order["lines"]:
            counts[line["sku"]] += line["qty"]
    return {"top": counts.most_common(arguments.get("limit", 2)), "customers": dict(by_customer)}
'''

LIBRARY = '''
import statistics
import datetime
import re
import json


def loan_stats(state, **arguments):
    days = [loan["days"] for loan in state["loans"]]
    return {"mean": statistics.mean(days), "median": statistics.median(days), "stdev": round(statistics.stdev(days), 3)}


def search_books(state, **arguments):
    pattern = re.compile(re.escape(arguments["query"]), re.IGNORECASE)
    return [book for book in state["books"] if pattern.search(book["title"])]


def due_date(state, **arguments):
    start = datetime.datetime.strptime(arguments["borrowed"], "%Y-%m-%d")
    return (start + datetime.timedelta(days=21)).strftime("%d %B %Y")


def export(state, **arguments):
    return json.loads(json.dumps(state["books"][:1]))
'''


def test_realistic_tool_modules_pass_and_run():
    for source in (BOOKINGS, ORDERS, LIBRARY):
        assert check_module(source) == [], check_module(source)
    orders_state = {"orders": {
        "o1": {"customer": "ann", "lines": [{"sku": "pen", "price": 1.105, "qty": 3}, {"sku": "ink", "price": 4.5, "qty": 1}]},
        "o2": {"customer": "bob", "lines": [{"sku": "pen", "price": 1.105, "qty": 1}]}}}
    library_state = {"loans": [{"days": 3}, {"days": 10}, {"days": 7}],
                     "books": [{"title": "Dune"}, {"title": "The Dune Chronicles"}, {"title": "Emma"}]}
    with Runtime(FAST) as rt:
        bookings = rt.register(BOOKINGS)
        made = rt.call(bookings, "create_booking", {"check_in": "2025-03-01", "check_out": "2025-03-04",
                                                    "nightly_cents": 12050}, {})
        assert made.ok and made.output == {"check_in": "2025-03-01", "check_out": "2025-03-04",
                                           "booking_id": "bk-1", "total": "361.50"}, made
        missing = rt.call(bookings, "get_booking", {"booking_id": "bk-9"}, made.state)
        assert missing.error == "booking 'bk-9' not found; list the guest's bookings to find its id"
        nights = rt.call(bookings, "booking_nights", {"check_in": "2025-03-01", "check_out": "2025-03-08"}, {})
        assert nights.output == 7
        orders = rt.register(ORDERS)
        assert rt.call(orders, "order_total", {"order_id": "o1"}, orders_state).output == \
            {"order_id": "o1", "total": "7.82"}
        assert rt.call(orders, "best_sellers", {}, orders_state).output == \
            {"top": [["pen", 4], ["ink", 1]], "customers": {"ann": ["o1"], "bob": ["o2"]}}
        library = rt.register(LIBRARY)
        assert rt.call(library, "loan_stats", {}, library_state).output == {"mean": 6.666666666666667,
                                                                           "median": 7, "stdev": 3.512}
        assert len(rt.call(library, "search_books", {"query": "dune"}, library_state).output) == 2
        assert rt.call(library, "due_date", {"borrowed": "2025-01-30"}, {}).output == "20 February 2025"


# --- limits, error caps, state round trip ---------------------------------------------------------------
@pytest.mark.parametrize("bad", [{"wall_seconds": -1}, {"wall_seconds": 0}, {"memory_bytes": 0},
                                 {"cpu_seconds": float("nan")}, {"max_output_bytes": 0},
                                 {"isolation": "none"}, {"wall_seconds": True}])
def test_limits_are_validated(bad):
    with pytest.raises(ValueError, match="Limits"):
        Limits(**bad)


def test_errors_are_capped_like_outputs():
    source = "def f(state, **a):\n    raise ToolError('e' * 30_000_000)\n"
    with Runtime(Limits(wall_seconds=5, max_error_chars=1000)) as rt:
        result = rt.call(rt.register(source), "f", {}, {})
    assert not result.ok and len(result.error) < 1100 and "more characters cut" in result.error


def test_state_round_trip_errors_name_the_problem():
    source = ("def collide(state, **a):\n    state[1] = 'a'\n    state['1'] = 'b'\n    return 1\n\n"
              "def surrogate(state, **a):\n    state['s'] = a['text']\n    return 1\n")
    state = {"k": "v"}
    with Runtime(FAST) as rt:
        mid = rt.register(source)
        collide = rt.call(mid, "collide", {}, state)
        assert not collide.ok and "key 1 of type int" in collide.error and collide.state is state
        bad_arg = rt.call(mid, "surrogate", {"text": "\ud800"}, state)
        assert not bad_arg.ok and "lone surrogate (U+D800)" in bad_arg.error
        assert rt.call(mid, "surrogate", {"text": "fine"}, state).ok  # the worker lives on


# --- the static check: every node kind that names something, and linear time ----------------------------
IDENTIFIER_LIKE = {"id", "attr", "name", "asname", "arg", "names", "rest", "kwd_attrs", "module"}


def test_identifier_table_covers_every_ast_node_kind():
    for name in dir(ast):
        node_type = getattr(ast, name)
        if not (isinstance(node_type, type) and issubclass(node_type, ast.AST)):
            continue
        named = IDENTIFIER_LIKE & set(getattr(node_type, "_fields", ()))
        if name in ("Import", "ImportFrom"):
            named.discard("names")  # a list of alias nodes, each checked as ast.alias
        if named and name != "TypeAlias":  # TypeAlias.name is an expression (a Name node), not an identifier
            assert name in IDENTIFIER_FIELDS, f"ast.{name} carries {named} but the check has no rule for it"
            assert named == set(IDENTIFIER_FIELDS[name]), name


DUNDER_IN_EVERY_SLOT = {
    "Name.id": "def f(state):\n    return __builtins__\n",
    "Attribute.attr": "def f(state):\n    return state.__class__\n",
    "FunctionDef.name": "def __getattr__(state):\n    return 1\ndef f(state):\n    return 1\n",
    "method name": "class A:\n    def __getattribute__(self, n):\n        return 1\ndef f(state):\n    return 1\n",
    "ClassDef.name": "class __A:\n    pass\ndef f(state):\n    return 1\n",
    "alias.name": "from json import __loader__\ndef f(state):\n    return 1\n",
    "alias.asname": "import json as __j\ndef f(state):\n    return 1\n",
    "arg.arg": "def f(state, __x=1):\n    return 1\n",
    "keyword.arg": "def f(state):\n    return dict(__x=1)\n",
    "ExceptHandler.name": "def f(state):\n    try:\n        return 1\n    except ValueError as __e:\n        return 2\n",
    "Global.names": "def f(state):\n    global __x\n    return 1\n",
    "MatchAs.name": "def f(state):\n    match state:\n        case __x:\n            return 1\n",
    "MatchStar.name": "def f(state):\n    match state:\n        case [*__rest]:\n            return 1\n",
    "MatchMapping.rest": "def f(state):\n    match state:\n        case {**__rest}:\n            return 1\n",
    "MatchMapping key": "def f(state):\n    match state:\n        case {'__globals__': g}:\n            return g\n",
    "MatchClass.kwd_attrs": "def f(state):\n    match state:\n        case dict(__class__=c):\n            return c\n",
    "MatchClass private": "def f(state):\n    match state:\n        case dict(_private=c):\n            return c\n",
    "ImportFrom.module": "from __future__ import annotations\ndef f(state):\n    return 1\n",
    "super with arguments": "class A:\n    def g(self):\n        return super(A, self).g()\ndef f(state):\n    return 1\n",
    "__all__ as a value": "__all__ = ['f']\ndef f(state):\n    return __all__\n",
}


@pytest.mark.parametrize("slot", sorted(DUNDER_IN_EVERY_SLOT))
def test_a_dunder_in_any_identifier_slot_is_refused(slot):
    assert check_module(DUNDER_IN_EVERY_SLOT[slot]), f"{slot} was accepted"


def test_static_check_time_is_linear_in_the_module_size():
    def seconds(n: int) -> float:
        source = "import json\n" * n + "def f(state):\n    return 1\n"
        # the cyclic collector's passes over a large AST are not the checker's cost, and under CI load they
        # made the ratio swing from 10x to 27x; CPU time ignores other processes on the core
        gc.collect()
        gc.disable()
        try:
            start = time.process_time()
            check_module(source)
            return time.process_time() - start
        finally:
            gc.enable()

    small, large = min(seconds(10_000) for _ in range(5)), min(seconds(80_000) for _ in range(5))
    # 8x the input: linear measures ~10x here, quadratic would be ~64x
    assert large < 32 * small, (small, large)
    assert large < 10


def test_cli_rejects_bad_limits_with_one_line(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f(state):\n    return 1\n")
    for option, value in (("--wall-seconds", "-1"), ("--memory-mb", "0"), ("--cpu-seconds", "0")):
        proc = subprocess.run([sys.executable, "-m", "agentscaler_dagster.cli", "sandbox-run", str(module), "f",
                               option, value], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and option in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, \
            (option, proc.stderr)


def test_tool_names_starting_with_an_underscore_reach_their_tool_function_only():
    source = ("def _helper(state, **a):\n    return 'private'\n\n"
              "def tool_id(state, **a):\n    return 'the _id tool'\n")
    with Runtime(FAST) as rt:
        mid = rt.register(source)
        assert rt.call(mid, "_id", {}, {}).output == "the _id tool"
        refused = rt.call(mid, "_helper", {}, {})
        assert not refused.ok and "no function '_helper'" in refused.error
