"""``agentscaler ingest PATH [PATH ...] --out DIR [--format F]``.

Exit 0 when the run happened, whatever was quarantined (the report says what); 2 with a one-line reason
when it could not run at all (a path that does not exist, an output folder that cannot be written).
"""

from __future__ import annotations

import argparse
import sys

from agentscaler_dagster.corpus.ingest import IngestError, ingest
from agentscaler_dagster.corpus.readers import FORCE_CHOICES


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "ingest",
        help="Read API specs (files or folders, recursively) into corpus.parquet.",
        description="Read API specs (OpenAPI/Swagger, OpenAI tools, MCP, ToolBench, BFCL) into DIR/corpus.parquet "
        "and DIR/ingest_report.json.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="spec file or folder (read recursively)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--format", dest="force_format", choices=FORCE_CHOICES, default=None,
                   help="treat every file as this format instead of detecting it")
    p.add_argument("--rewrite-descriptions", action="store_true",
                   help="rewrite descriptions into explicit 'Inputs: ...; Returns: ...' form")
    p.add_argument("--workers", type=int, default=None, help="parsing processes (default: up to 2)")
    p.add_argument("--no-cache", action="store_true", help="parse every file, ignoring DIR/.cache")
    p.set_defaults(func=handler)
    return p


def handler(args: argparse.Namespace) -> int:
    try:
        report = ingest(
            args.paths,
            args.out,
            force_format=args.force_format,
            rewrite_descriptions=getattr(args, "rewrite_descriptions", False),
            workers=getattr(args, "workers", None),
            use_cache=not getattr(args, "no_cache", False),
        )
    except IngestError as exc:
        print(f"agentscaler ingest: {exc}", file=sys.stderr)
        return 2
    print(
        f"ingested {report.ingested} tools from {report.inputs} files "
        f"({report.operations_seen} operations: {report.duplicates} duplicate, {report.filtered} filtered, "
        f"{report.quarantined_operations} quarantined; {report.quarantined_files} files quarantined; "
        f"{report.reused_files} files reused) in {report.seconds:.1f} s -> {report.corpus_path}"
    )
    return 0
