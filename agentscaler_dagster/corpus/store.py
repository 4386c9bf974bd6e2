"""corpus.parquet: one row per ToolSpec, JSON text for the nested fields, rows sorted by tool_id.

No timestamps and a fixed column order, so the same tools give the same bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from agentscaler_dagster.artifacts import seal, verify
from agentscaler_dagster.contracts import HttpBinding, ToolSource, ToolSpec, canonical_json

CORPUS_FILE = "corpus.parquet"
COLUMNS = (
    "tool_id", "name", "description", "parameters", "returns", "operation", "source_file", "source_format",
    "api_title", "provider", "categories", "http_method", "http_path", "original_name",
    "original_description", "description_origin",
)
# ToolSource extras carried only when they say something: a tool described by its own source text looks
# exactly as it did before these columns existed
_DESCRIPTION_EXTRAS = ("original_description", "description_origin")
_SCHEMA = pa.schema([(c, pa.string()) for c in COLUMNS])


def tool_to_row(tool: ToolSpec) -> dict:
    src = tool.source
    return {
        "tool_id": tool.tool_id,
        "name": tool.name,
        "description": tool.description,
        "parameters": canonical_json(tool.parameters),
        "returns": canonical_json(tool.returns) if tool.returns is not None else None,
        "operation": tool.operation,
        "source_file": src.file,
        "source_format": src.format,
        "api_title": src.api_title,
        "provider": src.provider,
        "categories": canonical_json(list(src.categories)),
        "http_method": tool.http.method if tool.http else None,
        "http_path": tool.http.path if tool.http else None,
        "original_name": src.original_name,
        "original_description": getattr(src, "original_description", None),
        "description_origin": getattr(src, "description_origin", None) or "source",
    }


def row_to_tool(row: dict) -> ToolSpec:
    http = None
    if row.get("http_method") and row.get("http_path") is not None:
        http = HttpBinding(method=row["http_method"], path=row["http_path"])
    original = row.get("original_name")
    return ToolSpec(
        tool_id=row["tool_id"],
        name=row["name"],
        description=row["description"],
        parameters=json.loads(row["parameters"]),
        returns=json.loads(row["returns"]) if row.get("returns") else None,
        operation=row["operation"],
        source=ToolSource(
            format=row["source_format"],
            file=row["source_file"],
            api_title=row.get("api_title"),
            provider=row.get("provider"),
            categories=json.loads(row["categories"]) if row.get("categories") else [],
            original_name=original if original and original != row["name"] else None,
            **({k: row.get(k) for k in _DESCRIPTION_EXTRAS} if row.get("description_origin") not in (None, "source") else {}),
        ),
        http=http,
    )


def write_rows(rows: Iterable[dict], out_dir: str | Path) -> Path:
    """Write rows (dicts with COLUMNS) sorted by tool_id; atomic replace. Returns the file path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ordered = sorted(rows, key=lambda r: r["tool_id"])
    columns = {}
    for c in COLUMNS:
        if c == "original_name":
            columns[c] = [r["original_name"] if r.get("original_name") != r["name"] else None for r in ordered]
        else:
            columns[c] = [r.get(c) for r in ordered]
    table = pa.table(columns, schema=_SCHEMA)
    path = out / CORPUS_FILE
    tmp = out / f".{CORPUS_FILE}.tmp"
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)
    seal(path, records=len(ordered))  # checked by read_rows: a file cut short or edited later is refused
    return path


def write_corpus(tools: Iterable[ToolSpec], out_dir: str | Path) -> Path:
    """Write ToolSpecs to ``out_dir/corpus.parquet``; returns the file path."""
    return write_rows((tool_to_row(t) for t in tools), out_dir)


def read_rows(path: str | Path) -> list[dict]:
    p = Path(path)
    if p.is_dir():
        p = p / CORPUS_FILE
    if not p.is_file():
        raise FileNotFoundError(f"no corpus at {p} (run `agentscaler ingest ... --out {p.parent}` first)")
    verify(p)
    return pq.read_table(p).to_pylist()


def read_corpus(path: str | Path) -> list[ToolSpec]:
    """ToolSpecs from ``corpus.parquet`` (a folder holding it, or the file itself), in tool_id order."""
    return [row_to_tool(r) for r in read_rows(path)]
