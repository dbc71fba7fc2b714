"""`fruits status`: the stream's health from its status log, one exit code per state."""

from __future__ import annotations

import argparse
import json
import os

from fruits_core.lake_uris import lake_uri_from_argument
from streaming_job.health import STATES


def states_help() -> str:
    """The epilog of `fruits status --help`: every state with its exit code, from streaming_job.health."""
    lines = ["states and exit codes (first match wins):"]
    lines += [f"  {state.upper():<13} {code}  {rule}" for state, code, rule in STATES]
    lines.append("(1: an unexpected error, 2: a bad flag or missing AWS credentials)")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = states_help()
    parser.add_argument(
        "--lake",
        default=os.environ.get("FRUITS_LAKE"),
        help="lake root: s3://bucket[/prefix] or file:///abs/path (env FRUITS_LAKE)",
    )
    parser.add_argument("--json", action="store_true", help="print the status as one JSON object")


def run(args: argparse.Namespace) -> int:
    from fruits_core.errors import ConfigError
    from streaming_job.health import lake_health, render_table

    if not args.lake:
        raise ConfigError("--lake (or FRUITS_LAKE) is required")
    lake = lake_uri_from_argument(args.lake, "--lake")
    report = lake_health(lake)
    print(json.dumps(report.to_dict(), sort_keys=True) if args.json else render_table(report, lake))
    return report.exit_code
