"""`fruits lake maintain`: compact, expire and clean the lake's Iceberg tables (fruits_lake.maintain_cli)."""

from __future__ import annotations

import argparse

from fruits_lake.maintain_cli import add_maintain_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="<action>")
    summary = "row retention, compaction, snapshot expiry and orphan file removal on every table"
    maintain = actions.add_parser("maintain", help=summary, description=summary)
    add_maintain_arguments(maintain)


def run(args: argparse.Namespace) -> int:
    from fruits_lake.maintain_cli import run as run_maintain

    return run_maintain(args)
