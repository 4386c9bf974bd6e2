"""``agentscaler ingest PATH [PATH ...] --out DIR [--format F]``.

Exit 0 when the run happened, whatever was quarantined or skipped (the report says what and why); 2 with a
one-line reason when it could not run at all (a path that does not exist, an output folder that cannot be
written, a bad option value such as ``--workers 0``).
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
    p.add_argument("--describe-with-llm", metavar="URL", default=None,
                   help="write the descriptions of tools whose source had fewer than 3 words with the chat model "
                        "at this OpenAI-compatible URL (cached by content in DIR/.descriptions); default: composed")
    p.add_argument("--llm-model", default="default", help="model name sent to --describe-with-llm")
    p.add_argument("--workers", type=int, default=None, help="parsing processes (default: up to 2)")
    p.add_argument("--no-cache", action="store_true", help="parse every file, ignoring DIR/.cache")
    p.set_defaults(func=handler)
    return p


def handler(args: argparse.Namespace) -> int:
    workers = getattr(args, "workers", None)
    if workers is not None and workers < 1:
        # argparse would print its usage block too; a bad value gets one line, like every other refusal
        print(f"agentscaler ingest: --workers must be at least 1, got {workers}", file=sys.stderr)
        return 2
    url = getattr(args, "describe_with_llm", None)
    client = rewriter = None
    if url:
        from pathlib import Path

        from agentscaler_dagster.corpus.describe import LLMDescriber
        from agentscaler_dagster.llm.client import OpenAICompatibleClient

        client = OpenAICompatibleClient(base_url=url, model=getattr(args, "llm_model", "default"))
        rewriter = LLMDescriber(client, Path(args.out) / ".descriptions")
    try:
        report = ingest(
            args.paths,
            args.out,
            force_format=args.force_format,
            rewriter=rewriter,
            rewrite_scope="composed" if rewriter is not None else "all",
            rewrite_descriptions=getattr(args, "rewrite_descriptions", False),
            workers=getattr(args, "workers", None),
            use_cache=not getattr(args, "no_cache", False),
        )
    except IngestError as exc:
        print(f"agentscaler ingest: {exc}", file=sys.stderr)
        return 2
    finally:
        if client is not None:
            client.close()
    print(
        f"ingested {report.ingested} tools from {report.inputs} files "
        f"({report.operations_seen} operations: {report.duplicates} duplicate, {report.filtered} filtered, "
        f"{report.quarantined_operations} quarantined; {report.quarantined_files} files quarantined; "
        f"{report.reused_files} files reused) in {report.seconds:.1f} s -> {report.corpus_path}"
    )
    return 0
