"""`agentscaler`: run pipeline stages without Dagster.

Each stage package contributes its subcommands through ``<stage>.cli.register(subparsers)``;
a subcommand's handler takes the parsed arguments and returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# stage packages whose cli module adds subcommands, in the order the help lists them
_STAGE_CLIS = (
    "agentscaler_dagster.corpus.cli",
    "agentscaler_dagster.domains.cli",
    "agentscaler_dagster.envgen.cli",
    "agentscaler_dagster.rollout.cli",
    "agentscaler_dagster.sandbox.cli",
    "agentscaler_dagster.evaluation.tau2_export",
    "agentscaler_dagster.pipeline_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentscaler", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in _STAGE_CLIS:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a run that could not happen at all: one line, non-zero
        print(f"agentscaler {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
