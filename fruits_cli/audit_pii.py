"""`fruits audit-pii`: exit 1 when any lake object or table column holds a raw identifier.

Prints where (object key, field or column, kind), never the value itself (docs/gdpr.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fruits_core.errors import ConfigError
from fruits_core.lake_uris import add_lake_argument, required_lake_uri


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_lake_argument(parser)
    parser.add_argument(
        "--known-values",
        type=Path,
        default=None,
        help="a file of raw values (one a line) that must appear nowhere, e.g. a test's upload metadata",
    )


def run(args: argparse.Namespace) -> int:
    from fruits_privacy.lake_objects import open_lake_objects
    from fruits_privacy.pii_audit import audit_lake
    from fruits_privacy.pii_detectors import normalized_known_values

    lake = required_lake_uri(args.lake)
    known = frozenset()
    if args.known_values is not None:
        try:
            known = normalized_known_values(args.known_values.read_text(encoding="utf-8").splitlines())
        except OSError as error:
            raise ConfigError(f"--known-values {args.known_values}: {error.strerror}") from None
    report = audit_lake(open_lake_objects(lake), known)
    for finding in report.findings:
        print(f"FOUND {finding.kind} in {finding.key} at {finding.location}")
    print(
        f"fruits audit-pii: {report.scanned} objects scanned (images by their metadata), "
        f"{report.skipped} binary skipped, "
        f"{len(report.findings)} findings"
    )
    return 1 if report.findings else 0
