"""`fruits status`: the stream's health from its status log (exit 0 when healthy, 1 otherwise)."""

from __future__ import annotations

import argparse
import json
import os

from fruits_core.lake_uris import validate_lake_uri


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    lake = validate_lake_uri(args.lake, "--lake")
    report = lake_health(lake)
    print(json.dumps(report.to_dict(), sort_keys=True) if args.json else render_table(report, lake))
    return 0 if report.health == "healthy" else 1
