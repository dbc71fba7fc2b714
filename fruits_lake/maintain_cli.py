"""Maintain the lake's tables: `fruits lake maintain`, and the scheduled EMR step (whose entry,
streaming_job/maintain_main.py, opens the SparkSession YARN needs and calls `main`).

Usage:
    fruits lake maintain --lake file:///abs/lake [options]

Per table (features, errors): deletes rows older than --retention-days, compacts
each partition to one file, expires snapshots older than --snapshot-retention-days
(keeping the newest --keep-snapshots), then deletes unreferenced files older than
--orphan-min-age-hours. One line per step, or one JSON object with --json.
An s3:// lake uses the Glue database named by FRUITS_GLUE_DATABASE.
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta

from fruits_core.errors import ConfigError, exit_code_of
from fruits_core.lake_uris import add_lake_argument, required_lake_uri
from fruits_lake.maintenance_defaults import DEFAULT_RETENTION_DAYS, DEFAULTS, MIN_ORPHAN_AGE_HOURS


def add_maintain_arguments(parser: argparse.ArgumentParser) -> None:
    add_lake_argument(parser)
    parser.add_argument(
        "--retention-days",
        type=int,
        default=DEFAULT_RETENTION_DAYS,
        help=f"delete rows dated (features: uploaded_at, errors: processed_at) before UTC midnight this "
        f"many days ago; 0 keeps every row (default {DEFAULT_RETENTION_DAYS})",
    )
    parser.add_argument(
        "--snapshot-retention-days",
        type=float,
        default=DEFAULTS["snapshot_retention_days"],
        help="expire snapshots older than this: time travel reaches this far back "
        f"(default {DEFAULTS['snapshot_retention_days']:g})",
    )
    parser.add_argument(
        "--keep-snapshots",
        type=int,
        default=DEFAULTS["keep_snapshots"],
        help=f"always keep this many newest snapshots (default {DEFAULTS['keep_snapshots']})",
    )
    parser.add_argument(
        "--orphan-min-age-hours",
        type=float,
        default=DEFAULTS["orphan_min_age_hours"],
        help="delete an unreferenced file only when older than this, so an in-flight commit is "
        f"never damaged; at least {MIN_ORPHAN_AGE_HOURS:g} (default {DEFAULTS['orphan_min_age_hours']:g})",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def options_from_args(args: argparse.Namespace):
    """Validated MaintainOptions (ConfigError naming the flag otherwise)."""
    from fruits_lake.maintenance import MaintainOptions

    required_lake_uri(args.lake)
    if args.retention_days < 0:
        raise ConfigError(f"--retention-days must be 0 (keep every row) or more, got {args.retention_days}")
    if args.snapshot_retention_days < 0:
        raise ConfigError(f"--snapshot-retention-days must be 0 or more, got {args.snapshot_retention_days}")
    if args.keep_snapshots < 1:
        raise ConfigError(f"--keep-snapshots must be at least 1 (the current one), got {args.keep_snapshots}")
    if args.orphan_min_age_hours < MIN_ORPHAN_AGE_HOURS:
        raise ConfigError(
            f"--orphan-min-age-hours must be at least {MIN_ORPHAN_AGE_HOURS:g} so that files of a commit "
            f"in flight are never deleted, got {args.orphan_min_age_hours}"
        )
    return MaintainOptions(
        snapshot_retention=timedelta(days=args.snapshot_retention_days),
        keep_snapshots=args.keep_snapshots,
        orphan_min_age=timedelta(hours=args.orphan_min_age_hours),
        retention_days=args.retention_days or None,
    )


def render_lines(reports) -> list[str]:
    """One line per table and step, with its counts."""
    width = max(len(report.table) for report in reports)
    lines = []
    for report in reports:
        steps = [
            (
                "retention",
                "off: every row kept"
                if report.retention_cutoff is None
                else f"{report.rows_deleted} rows deleted (dated before {report.retention_cutoff})",
            ),
            (
                "compact",
                f"{report.partitions_compacted} partitions rewritten, "
                f"{report.files_before} data files -> {report.files_after}",
            ),
            ("expire", f"{report.snapshots_expired} snapshots expired, {report.snapshots_kept} kept"),
            ("orphans", f"{report.orphan_files_removed} unreferenced files removed"),
            ("retries", f"{report.commit_retries} commits retried after a concurrent commit"),
        ]
        lines += [f"{report.table:<{width}}  {step:<9}  {text}" for step, text in steps]
    return lines


def run(args: argparse.Namespace) -> int:
    from fruits_lake.catalog import open_catalog
    from fruits_lake.maintenance import maintain_lake

    options = options_from_args(args)
    lake = args.lake.rstrip("/")
    reports = maintain_lake(open_catalog(lake), options)
    if args.json:
        print(json.dumps({"lake": lake, "tables": [report.as_dict() for report in reports]}, sort_keys=True))
    else:
        print("\n".join(render_lines(reports)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="maintain_main.py", description=__doc__.splitlines()[0])
    add_maintain_arguments(parser)
    args = parser.parse_args(argv)
    return exit_code_of("maintain_main.py", lambda: run(args))
