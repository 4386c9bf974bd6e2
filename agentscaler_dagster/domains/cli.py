"""`agentscaler domains`: corpus folder in, domains out (no Dagster needed)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agentscaler_dagster.contracts import ToolSource, ToolSpec
from agentscaler_dagster.domains.embed import TEXT_FIELDS


def _json_field(value, default):
    if value is None:
        return default
    if isinstance(value, (dict, list)):
        return value
    text = str(value).strip()
    return json.loads(text) if text else default


def read_corpus_parquet(corpus_dir: Path) -> tuple[list[ToolSpec], list[str]]:
    """ToolSpecs from ``corpus_dir/corpus.parquet``; returns (tools, one message per row skipped).

    Required columns: tool_id, name, parameters (JSON text or struct). Optional columns are filled
    with defaults when missing: description, operation (read), returns, source_* / source (JSON),
    http_method + http_path or http (JSON).
    """
    import pyarrow.parquet as pq

    path = Path(corpus_dir) / "corpus.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"no corpus.parquet in {corpus_dir} (run `agentscaler ingest` first)")
    table = pq.read_table(path)
    missing = {"tool_id", "name", "parameters"} - set(table.column_names)
    if missing:
        raise ValueError(f"{path}: missing required column(s) {sorted(missing)}; has {table.column_names}")
    tools, errors = [], []
    for i, row in enumerate(table.to_pylist()):
        try:
            source = _json_field(row.get("source"), None)
            if not isinstance(source, dict):
                source = {"format": row.get("source_format") or row.get("format") or "unknown",
                          "file": row.get("source_file") or row.get("file") or "",
                          "api_title": row.get("api_title") or row.get("source_api_title"),
                          "provider": row.get("provider") or row.get("source_provider"),
                          "categories": _json_field(row.get("categories") or row.get("source_categories"), []),
                          "original_name": row.get("original_name")}
            http = _json_field(row.get("http"), None)
            if http is None and row.get("http_method") and row.get("http_path"):
                http = {"method": row["http_method"], "path": row["http_path"]}
            tools.append(ToolSpec(
                tool_id=row["tool_id"], name=row["name"], description=row.get("description") or "",
                parameters=_json_field(row["parameters"], {"type": "object", "properties": {}}),
                returns=_json_field(row.get("returns"), None),
                operation=row.get("operation") or "read",
                source=ToolSource(**source), http=http or None,
            ))
        except Exception as exc:  # one bad row never stops the rest
            errors.append(f"{path} row {i} (tool_id={row.get('tool_id')!r}): {type(exc).__name__}: {exc}")
    return tools, errors


def load_corpus(corpus_dir: Path) -> tuple[list[ToolSpec], list[str]]:
    """The corpus stage's ``read_corpus``; ``read_corpus_parquet`` where that is absent or refuses the file.

    The fallback reads files from older or partial writers (missing optional columns) and skips bad
    rows one by one instead of failing the whole corpus.
    """
    path = Path(corpus_dir)
    if not (path / "corpus.parquet").is_file():
        raise FileNotFoundError(f"no corpus.parquet in {corpus_dir} (run `agentscaler ingest` first)")
    try:
        from agentscaler_dagster.corpus import read_corpus
    except ImportError:
        return read_corpus_parquet(path)
    try:
        return list(read_corpus(path)), []
    except (KeyError, ValueError, TypeError):
        return read_corpus_parquet(path)


def register(subparsers) -> None:
    p = subparsers.add_parser("domains", help="tool graph + communities: corpus -> domains",
                              description="Embed each tool's parameter list, link similar tools, find domains.")
    p.add_argument("--corpus", required=True, type=Path, help="folder holding corpus.parquet (agentscaler ingest)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--embedder", choices=["minilm", "hashing"], default=None)
    p.add_argument("--text-fields", default=None, choices=list(TEXT_FIELDS),
                   help="what is embedded per tool (default: api+name+description)")
    p.add_argument("--threshold", type=float, default=None,
                   help="cosine similarity threshold of the tool graph (default: chosen from the corpus)")
    p.add_argument("--algorithm", choices=["leiden", "louvain"], default=None)
    p.add_argument("--resolution", type=float, default=None,
                   help="community resolution (default: chosen from a target domain size)")
    p.add_argument("--cache-dir", type=Path, default=None, help="embedding cache folder")
    p.add_argument("--workers", type=int, default=None,
                   help="MiniLM (ONNX) embedding worker processes (default: the usable cores; 1 = in this process); "
                        "the vectors are the same bytes for any count")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from agentscaler_dagster.domains import DomainConfig, discover_domains

    workers = getattr(args, "workers", None)
    if workers is not None and workers < 1:
        print(f"agentscaler domains: --workers must be at least 1, got {workers}", file=sys.stderr)
        return 2
    tools, errors = load_corpus(args.corpus)
    for msg in errors:
        print(f"agentscaler domains: skipped {msg}", file=sys.stderr)
    overrides = {k: v for k, v in {"seed": args.seed, "embedder": args.embedder, "threshold": args.threshold,
                                   "text_fields": getattr(args, "text_fields", None),
                                   "algorithm": args.algorithm, "resolution": args.resolution,
                                   "cache_dir": args.cache_dir}.items() if v is not None}
    config = DomainConfig(**overrides)
    embedder = None
    if workers is not None and config.embedder == "minilm":
        from agentscaler_dagster.domains.embed import make_embedder

        embedder = make_embedder("minilm", workers=workers)
    result = discover_domains(tools, args.out, config, progress=lambda m: print(m, file=sys.stderr),
                              embedder=embedder)
    rep = result.report
    print(json.dumps({k: rep[k] for k in ("n_tools", "n_domains", "modularity", "threshold", "resolution", "seconds")}
                     | {"out": str(args.out)}, sort_keys=True))
    return 0
