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
    "input", "breakpoint", "help", "exit", "quit", "memoryview", "type", "object", "super", "dir", "id",
    "classmethod", "staticmethod", "property", "bytearray", "callable", "issubclass", "print", "copyright",
    "credits", "license",
})

# attributes that lead from an ordinary object to frames, code objects or formatting tricks
FORBIDDEN_ATTRIBUTES = frozenset({
    "mro", "format", "format_map", "now", "utcnow", "today", "register", "load", "dump",
})
_FRAME_PREFIXES = ("f_", "co_", "tb_", "gi_", "cr_", "ag_")

# statements allowed at module level: the module is a bag of definitions, not a script
_TOP_LEVEL = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)

MAX_SOURCE_CHARS = 2_000_000


def _is_dunder(name: str) -> bool:
    return name.startswith("__")


class _Checker(ast.NodeVisitor):
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.module_aliases: dict[str, str] = {}
        self._module_name_ok: set[int] = set()

    def problem(self, node: ast.AST, message: str) -> None:
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
                self._check_identifier(node, alias.asname or alias.name)

    # --- names and attributes ------------------------------------------------------------------------
    def _check_identifier(self, node: ast.AST, name: str) -> None:
        if _is_dunder(name):
            self.problem(node, f"dunder name '{name}' is not allowed")
        elif name in FORBIDDEN_NAMES:
            self.problem(node, f"name '{name}' is not allowed")
        elif name == "ToolError" and not isinstance(node, (ast.Name,)):
            self.problem(node, "'ToolError' is provided by the runtime; do not define or import it")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in self.module_aliases and id(node) not in self._module_name_ok:
            module = self.module_aliases[node.id]
            self.problem(node, f"module '{module}' may only be used as {node.id}.<name> "
                               "(no aliasing, passing or rebinding modules)")
        elif isinstance(node.ctx, (ast.Store, ast.Del)) and node.id == "ToolError":
            self.problem(node, "'ToolError' is provided by the runtime; do not rebind it")
        else:
            self._check_identifier(node, node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        if attr.startswith("_"):
            self.problem(node, f"private or dunder attribute '.{attr}' is not allowed")
        elif attr in FORBIDDEN_ATTRIBUTES:
            hint = " (use an f-string)" if attr in ("format", "format_map") else ""
            self.problem(node, f"attribute '.{attr}' is not allowed{hint}")
        elif attr.startswith(_FRAME_PREFIXES):
            self.problem(node, f"attribute '.{attr}' is not allowed (frame/code internals)")
        value = node.value
        if isinstance(value, ast.Name) and value.id in self.module_aliases:
            module = self.module_aliases[value.id]
            self._module_name_ok.add(id(value))
            if not isinstance(value.ctx, ast.Load) or not isinstance(node.ctx, ast.Load):
                self.problem(node, f"module '{module}' attributes cannot be assigned or deleted")
            elif attr not in ALLOWED_MODULES[module]:
                self.problem(node, f"'{module}.{attr}' is not allowed; allowed: "
                                   f"{', '.join(sorted(ALLOWED_MODULES[module]))}")
        self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> None:
        self._check_identifier(node, node.arg)
        if node.arg in self.module_aliases:
            self.problem(node, f"parameter '{node.arg}' shadows module '{self.module_aliases[node.arg]}'")
        self.generic_visit(node)

    # --- definitions and statements -------------------------------------------------------------------
    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
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
        self.generic_visit(node)

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

    def visit_With(self, node: ast.With) -> None:
        self.problem(node, "'with' is not allowed (context managers can swallow limits)")
        self.generic_visit(node)

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg is not None:
            self._check_identifier(node, node.arg)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, (bytes,)) and len(node.value) > 100_000:
            self.problem(node, "bytes constant is too large")


def check_module(source: str) -> list[str]:
    """Problems found in a tool module's source; an empty list means accepted."""
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
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            checker.visit(stmt)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and node not in tree.body:
            checker.problem(node, "imports are only allowed at module level")
    try:
        for stmt in tree.body:
            if not isinstance(stmt, (ast.Import, ast.ImportFrom)):
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
