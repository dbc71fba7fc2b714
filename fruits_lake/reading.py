"""Reading the lake's tables from Python: row counts from snapshot summaries, rows with pyiceberg."""

from __future__ import annotations

import pyarrow as pa
from pyiceberg.table import Table

from fruits_lake.catalog import ERRORS_TABLE, FEATURES_TABLE, open_catalog

# The current snapshot's summary counts the table's rows: no data file is opened to count them.
TOTAL_RECORDS = "total-records"


def committed_rows(table: Table) -> int:
    """Rows in the table's current snapshot (0 before its first commit)."""
    snapshot = table.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return 0
    return int(snapshot.summary[TOTAL_RECORDS] or 0)


def lake_tables(lake_uri: str) -> tuple[Table, Table]:
    """(features, errors) of an existing lake (NoSuchTableError before the stream created them)."""
    catalog = open_catalog(lake_uri)
    return catalog.load_table(FEATURES_TABLE), catalog.load_table(ERRORS_TABLE)


def read_features(lake_uri: str) -> pa.Table:
    """Every row of the lake's features table."""
    features, _ = lake_tables(lake_uri)
    return features.scan().to_arrow()
