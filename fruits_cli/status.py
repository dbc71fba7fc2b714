"""`fruits status`: the stream's health from its status log, one exit code per state."""

from __future__ import annotations

import argparse
import json

from fruits_core.lake_uris import add_lake_argument, required_lake_uri
from streaming_job.monitoring.health import STATES


def states_help() -> str:
    """`fruits status --help` epilog: each state and its exit code (streaming_job.monitoring.health)."""
    lines = ["states and exit codes (first match wins):"]
    lines += [f"  {state.upper():<13} {code}  {rule}" for state, code, rule in STATES]
    lines.append("(1: an unexpected error, 2: a bad flag or missing AWS credentials)")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = states_help()
    add_lake_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the status as one JSON object")


def run(args: argparse.Namespace) -> int:
    from streaming_job.monitoring.health import lake_health, render_table

    lake = required_lake_uri(args.lake)
    report = lake_health(lake)
    print(json.dumps(report.to_dict(), sort_keys=True) if args.json else render_table(report, lake))
    return report.exit_code
