"""Static check of an untrusted tool module (the first of two fences; the isolated worker is the second).

The module contract (DESIGN.md): one plain function per tool, ``def tool_name(state: dict, **arguments)``,
a domain error raised as ``ToolError`` (put into the module globals by the runtime, never imported), and
imports only from a short deterministic allowlist. The check is an AST allowlist: what it does not know,
it rejects, with a reason a code generator (or its author) can act on.
"""

from __future__ import annotations

import ast

# module -> the names a tool module may reach in it; anything else (a submodule, a private helper, a name
# that leads to another module such as re.sys or collections.abc) is rejected
ALLOWED_MODULES: dict[str, frozenset[str]] = {
    "json": frozenset({"loads", "dumps", "JSONDecodeError"}),
    "math": frozenset({
        "ceil", "floor", "fabs", "sqrt", "exp", "log", "log10", "log2", "pow", "isclose", "isfinite", "isnan",
        "isinf", "pi", "e", "inf", "nan", "tau", "gcd", "lcm", "comb", "perm", "factorial", "fsum", "prod",
        "trunc", "copysign", "fmod", "hypot", "dist", "sin", "cos", "tan", "asin", "acos", "atan", "atan2",
        "radians", "degrees", "modf", "frexp", "ldexp", "isqrt",
    }),
    "re": frozenset({
        "compile", "match", "search", "fullmatch", "findall", "finditer", "sub", "subn", "split", "escape",
        "IGNORECASE", "I", "MULTILINE", "M", "DOTALL", "S", "VERBOSE", "X", "ASCII", "A", "error",
    }),
    "datetime": frozenset({"date", "datetime", "time", "timedelta", "timezone", "MINYEAR", "MAXYEAR"}),
    "copy": frozenset({"deepcopy", "copy"}),
    "itertools": frozenset({
        "accumulate", "chain", "combinations", "combinations_with_replacement", "compress", "count", "cycle",
        "dropwhile", "filterfalse", "groupby", "islice", "pairwise", "permutations", "product", "repeat",
        "starmap", "takewhile", "tee", "zip_longest", "batched",
    }),
    "collections": frozenset({"Counter", "OrderedDict", "defaultdict", "deque", "namedtuple", "ChainMap"}),
    "decimal": frozenset({
        "Decimal", "InvalidOperation", "DivisionByZero", "ROUND_HALF_UP", "ROUND_HALF_EVEN", "ROUND_DOWN",
        "ROUND_UP", "ROUND_FLOOR", "ROUND_CEILING", "localcontext",
    }),
    "statistics": frozenset({
        "mean", "fmean", "geometric_mean", "harmonic_mean", "median", "median_low", "median_high", "mode",
        "multimode", "quantiles", "pstdev", "pvariance", "stdev", "variance", "StatisticsError",
    }),
}

# builtins that open a way out of the sandbox (introspection, code execution, I/O) or break determinism
FORBIDDEN_NAMES = frozenset({
    "eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "hasattr", "globals", "locals", "vars",
    "input", "breakpoint", "help", "exit", "quit", "memoryview", "type", "object", "dir", "id",
    "classmethod", "staticmethod", "property", "bytearray", "callable", "issubclass", "print", "copyright",
    "credits", "license",
})

# attributes that lead from an ordinary object to frames, code objects or formatting tricks
FORBIDDEN_ATTRIBUTES = frozenset({
    "mro", "format", "format_map", "now", "utcnow", "today", "register", "load", "dump",
})
_FRAME_PREFIXES = ("f_", "co_", "tb_", "gi_", "cr_", "ag_")

# the public API of namedtuple classes, which names its methods with one underscore
NAMEDTUPLE_ATTRIBUTES = frozenset({"_asdict", "_replace", "_fields", "_make", "_field_defaults"})

# special methods a tool module's own classes may define: construction, comparison, display, containers.
# Not those that change attribute lookup, run at odd times (__del__, __init_subclass__) or reach internals.
ALLOWED_SPECIAL_METHODS = frozenset({
    "__init__", "__repr__", "__str__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__",
    "__len__", "__iter__", "__contains__", "__bool__", "__getitem__", "__add__", "__sub__", "__mul__",
})

# statements allowed at module level: the module is a bag of definitions, not a script
_TOP_LEVEL = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)

# every syntax node that carries an identifier, and the fields that hold it (Python 3.10-3.13 grammar);
# tests/test_sandbox_static.py checks this table against the ast module, so a new node kind cannot slip by
IDENTIFIER_FIELDS: dict[str, tuple[str, ...]] = {
    "Name": ("id",), "Attribute": ("attr",), "FunctionDef": ("name",), "AsyncFunctionDef": ("name",),
    "ClassDef": ("name",), "alias": ("name", "asname"), "arg": ("arg",), "keyword": ("arg",),
    "ExceptHandler": ("name",), "Global": ("names",), "Nonlocal": ("names",), "MatchAs": ("name",),
    "MatchStar": ("name",), "MatchMapping": ("rest",), "MatchClass": ("kwd_attrs",), "ImportFrom": ("module",),
    "TypeVar": ("name",), "ParamSpec": ("name",), "TypeVarTuple": ("name",), "TypeAlias": (),
}

MAX_SOURCE_CHARS = 2_000_000
MAX_PROBLEMS = 200


def _is_dunder(name: str) -> bool:
    return name.startswith("__")


def _is_super_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"
            and not node.args and not node.keywords)


class _Checker(ast.NodeVisitor):
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.module_aliases: dict[str, str] = {}
        self.imported_names: dict[str, str] = {}  # from-imported name -> "module.name"
        self._ok_nodes: set[int] = set()  # names and attributes already judged by their parent node
        self._class_members: set[int] = set()  # functions defined directly in a class body (methods)
        self._class_depth = 0

    def problem(self, node: ast.AST, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            line = getattr(node, "lineno", None)
            self.problems.append(f"line {line}: {message}" if line else message)

    # --- imports -----------------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name not in ALLOWED_MODULES:
                self.problem(node, f"import of '{alias.name}' is not allowed; allowed modules: "
                                   f"{', '.join(sorted(ALLOWED_MODULES))}")
                continue
            bound = alias.asname or alias.name
            self._check_identifier(node, bound)
            self.module_aliases[bound] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level:
            self.problem(node, "relative imports are not allowed")
            return
        if module not in ALLOWED_MODULES:
            self.problem(node, f"import from '{module}' is not allowed; allowed modules: "
                               f"{', '.join(sorted(ALLOWED_MODULES))}")
            return
        for alias in node.names:
            if alias.name == "*":
                self.problem(node, f"star import from '{module}' is not allowed; import names explicitly")
            elif alias.name not in ALLOWED_MODULES[module]:
                self.problem(node, f"'{module}.{alias.name}' is not allowed; allowed: "
                                   f"{', '.join(sorted(ALLOWED_MODULES[module]))}")
            else:
                bound = alias.asname or alias.name
                self._check_identifier(node, bound)
                self.imported_names[bound] = f"{module}.{alias.name}"

    # --- names and attributes ------------------------------------------------------------------------
    def _check_identifier(self, node: ast.AST, name: str) -> None:
        if _is_dunder(name):
            self.problem(node, f"dunder name '{name}' is not allowed")
        elif name in FORBIDDEN_NAMES:
            self.problem(node, f"name '{name}' is not allowed")
        elif name == "ToolError" and not isinstance(node, (ast.Name,)):
            self.problem(node, "'ToolError' is provided by the runtime; do not define or import it")
        elif name == "super" and not isinstance(node, ast.Name):
            self.problem(node, "name 'super' is not allowed here")

    def _check_attribute_name(self, node: ast.AST, attr: str, what: str = "attribute") -> None:
        if attr.startswith("_") and attr not in NAMEDTUPLE_ATTRIBUTES:
            self.problem(node, f"private or dunder {what} '.{attr}' is not allowed")
        elif attr in FORBIDDEN_ATTRIBUTES:
            hint = " (use an f-string)" if attr in ("format", "format_map") else ""
            self.problem(node, f"{what} '.{attr}' is not allowed{hint}")
        elif attr.startswith(_FRAME_PREFIXES):
            self.problem(node, f"{what} '.{attr}' is not allowed (frame/code internals)")

    def visit_Name(self, node: ast.Name) -> None:
        if id(node) in self._ok_nodes:
            return
        if node.id in self.module_aliases:
            module = self.module_aliases[node.id]
            self.problem(node, f"module '{module}' may only be used as {node.id}.<name> "
                               "(no aliasing, passing or rebinding modules)")
        elif isinstance(node.ctx, (ast.Store, ast.Del)) and node.id == "ToolError":
            self.problem(node, "'ToolError' is provided by the runtime; do not rebind it")
        elif node.id == "super":
            self.problem(node, "'super' may only be called without arguments, as super().<method>(...)")
        else:
            self._check_identifier(node, node.id)

    def _root_name(self, node: ast.AST) -> ast.Name | None:
        while isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        return node if isinstance(node, ast.Name) else None

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        value = node.value
        if _is_super_call(value) and attr in ALLOWED_SPECIAL_METHODS | {"__init__"}:
            self._ok_nodes.add(id(value.func))
        else:
            self._check_attribute_name(node, attr)
        if not isinstance(node.ctx, ast.Load):
            root = self._root_name(value)
            if root is not None and (root.id in self.module_aliases or root.id in self.imported_names
                                     or root.id == "ToolError"):
                shared = self.imported_names.get(root.id) or self.module_aliases.get(root.id) or root.id
                self.problem(node, f"cannot assign or delete attributes of '{shared}' or what it holds: "
                                   "imported objects are shared by every call (subclass it instead)")
        if isinstance(value, ast.Name) and value.id in self.module_aliases:
            module = self.module_aliases[value.id]
            self._ok_nodes.add(id(value))
            if not isinstance(value.ctx, ast.Load) or not isinstance(node.ctx, ast.Load):
                self.problem(node, f"module '{module}' attributes cannot be assigned or deleted")
            elif attr not in ALLOWED_MODULES[module]:
                self.problem(node, f"'{module}.{attr}' is not allowed; allowed: "
                                   f"{', '.join(sorted(ALLOWED_MODULES[module]))}")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if _is_super_call(node):
            if self._class_depth == 0:
                self.problem(node, "super() is only allowed in a method")
            self._ok_nodes.add(id(node.func))
        self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> None:
        self._check_identifier(node, node.arg)
        if node.arg in self.module_aliases:
            self.problem(node, f"parameter '{node.arg}' shadows module '{self.module_aliases[node.arg]}'")
        self.generic_visit(node)

    # --- pattern matching: attributes and names reached without an Attribute node ------------------------
    def visit_MatchClass(self, node: ast.MatchClass) -> None:
        for attr in node.kwd_attrs:
            self._check_attribute_name(node, attr, "class-pattern attribute")
        self.generic_visit(node)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        for key in node.keys:
            if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value.startswith("_"):
                self.problem(node, f"mapping-pattern key {key.value!r} is not allowed (private or dunder)")
        if node.rest is not None:
            self._check_identifier(node, node.rest)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name is not None:
            self._check_identifier(node, node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name is not None:
            self._check_identifier(node, node.name)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name is not None:
            self._check_identifier(node, node.name)
        self.generic_visit(node)

    # --- definitions and statements -------------------------------------------------------------------
    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if not (id(node) in self._class_members and node.name in ALLOWED_SPECIAL_METHODS):
            self._check_identifier(node, node.name)
        if node.name in self.module_aliases:
            self.problem(node, f"function '{node.name}' shadows a module")
        self.generic_visit(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.problem(node, "async functions are not allowed")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._check_identifier(node, node.name)
        if node.keywords:
            self.problem(node, f"class '{node.name}': keywords in the class header (metaclass=...) are not allowed")
        if node.decorator_list:
            self.problem(node, f"class '{node.name}': class decorators are not allowed")
        for base in node.bases:
            if not isinstance(base, ast.Name):
                self.problem(node, f"class '{node.name}': bases must be plain names")
        for stmt in node.body:
            if isinstance(stmt, ast.FunctionDef):
                self._class_members.add(id(stmt))
        self._class_depth += 1
        self.generic_visit(node)
        self._class_depth -= 1

    def visit_Global(self, node: ast.Global) -> None:
        self.problem(node, "'global' is not allowed: tools keep their data in state, not in the module")

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.problem(node, "'nonlocal' is not allowed")

    def visit_Await(self, node: ast.Await) -> None:
        self.problem(node, "'await' is not allowed")

    def visit_AsyncFor(self, node: ast.AsyncFor) -> None:
        self.problem(node, "'async for' is not allowed")

    def visit_AsyncWith(self, node: ast.AsyncWith) -> None:
        self.problem(node, "'async with' is not allowed")

    def _is_localcontext(self, expr: ast.AST) -> bool:
        if not isinstance(expr, ast.Call):
            return False
        func = expr.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            return self.module_aliases.get(func.value.id) == "decimal" and func.attr == "localcontext"
        return isinstance(func, ast.Name) and self.imported_names.get(func.id) == "decimal.localcontext"

    def visit_With(self, node: ast.With) -> None:
        # a context manager's __exit__ could swallow errors; decimal's local context cannot
        if not all(self._is_localcontext(item.context_expr) for item in node.items):
            self.problem(node, "'with' is only allowed with decimal.localcontext() (context managers can "
                               "swallow errors)")
        self.generic_visit(node)

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg is not None:
            self._check_identifier(node, node.arg)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, (bytes,)) and len(node.value) > 100_000:
            self.problem(node, "bytes constant is too large")


def _is_all_declaration(stmt: ast.stmt) -> bool:
    """``__all__ = ["name", ...]``: the one dunder a module may bind."""
    return (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id == "__all__" and isinstance(stmt.value, (ast.List, ast.Tuple))
            and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in stmt.value.elts))


def check_module(source: str) -> list[str]:
    """Problems found in a tool module's source; an empty list means accepted. Linear in the source size."""
    if not isinstance(source, str):
        return [f"source must be str, got {type(source).__name__}"]
    if len(source) > MAX_SOURCE_CHARS:
        return [f"source is too large: {len(source)} characters > {MAX_SOURCE_CHARS}"]
    try:
        tree = ast.parse(source, mode="exec")
    except SyntaxError as exc:
        return [f"syntax error at line {exc.lineno}: {exc.msg}"]
    except (ValueError, RecursionError, MemoryError) as exc:
        return [f"source cannot be parsed: {type(exc).__name__}: {exc}"]
    checker = _Checker()
    for stmt in tree.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
            continue  # docstring
        if not isinstance(stmt, _TOP_LEVEL):
            checker.problem(stmt, f"top-level {type(stmt).__name__} statement is not allowed; "
                                  "a tool module holds imports, constants, functions and classes only")
    # imports bind module aliases, so they are visited before the uses they govern
    top_level_imports = set()
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            top_level_imports.add(id(stmt))
            checker.visit(stmt)
    try:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top_level_imports:
                checker.problem(node, "imports are only allowed at module level")
        for stmt in tree.body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                continue
            if _is_all_declaration(stmt):
                checker._ok_nodes.add(id(stmt.targets[0]))
            checker.visit(stmt)
    except RecursionError:
        checker.problems.append("source is nested too deeply to check")
    if not any(isinstance(s, ast.FunctionDef) and not s.name.startswith("_") for s in tree.body):
        checker.problems.append("module defines no tool function")
    # one problem per line and message is enough to act on
    return list(dict.fromkeys(checker.problems))


def tool_functions(source: str) -> list[str]:
    """Names of the public top-level functions of an accepted module (the tools it offers)."""
    tree = ast.parse(source)
    return [s.name for s in tree.body if isinstance(s, ast.FunctionDef) and not s.name.startswith("_")]
