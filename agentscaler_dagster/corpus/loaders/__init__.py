"""Loaders: one parsed document of a known format -> loaded operations (pre-normalisation).

Every loader returns a :class:`LoadResult`: the operations it could read (each a dict with
``original_name``, ``description``, ``summary``, ``parameters`` (cleaned JSON Schema object), ``returns``,
``http_method``, ``http_path``, ``api_title``, ``provider``, ``categories`` and optional ``annotations`` /
``name_hint``), the operations it had to quarantine with the reason, and how many operations it saw, so
that nothing is dropped without a count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class FileContext:
    label: str  # source_file as reported: relative to the ingested root
    stem: str  # file name without extension
    folder: str | None = None  # parent folder inside the ingested root, when there is one


@dataclass
class LoadResult:
    ops: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    filtered: list[dict] = field(default_factory=list)  # read, but the schema is unusable
    seen: int = 0

    def attempt(self, operation: str, build: Callable[[], dict | None]) -> None:
        """Count one operation and run its builder; any error quarantines that operation only."""
        self.seen += 1
        from agentscaler_dagster.corpus.schema import UnusableSchema

        try:
            op = build()
        except UnusableSchema as exc:
            self.filtered.append({"operation": operation, "reason": f"unusable_schema: {exc}"})
            return
        except Exception as exc:  # one bad operation must never stop the rest of the file
            self.quarantined.append({"operation": operation, "reason": _reason(exc)})
            return
        if op is not None:
            self.ops.append(op)

    def quarantine(self, operation: str, reason: str) -> None:
        self.seen += 1
        self.quarantined.append({"operation": operation, "reason": reason})


def _reason(exc: BaseException) -> str:
    from agentscaler_dagster.corpus.schema import UnresolvableRef

    if isinstance(exc, UnresolvableRef):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "nested too deeply to walk"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def as_str(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def as_str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [s for s in (as_str(v) for v in value) if s]


def load(fmt: str, doc: Any, ctx: FileContext) -> LoadResult:
    """Dispatch to the loader of ``fmt`` (one of readers.FORMATS)."""
    from agentscaler_dagster.corpus.loaders import bfcl, mcp, openai_tools, openapi, toolbench

    loaders = {
        "openapi3": openapi.load,
        "swagger2": openapi.load,
        "openai": openai_tools.load,
        "mcp": mcp.load,
        "toolbench": toolbench.load,
        "bfcl": bfcl.load,
    }
    return loaders[fmt](doc, ctx)
