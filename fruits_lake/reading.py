"""Reading the lake's tables from Python: row counts from snapshot summaries, rows with pyiceberg."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.table import Table

from fruits_lake.catalog import BATCH_ID_PROPERTY, ERRORS_TABLE, FEATURES_TABLE, open_catalog

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


def rows_with_a_prediction(features: Table, snapshot_id: int | None = None) -> tuple[int, int]:
    """(rows, rows whose predicted_label is set) of the features table, at a snapshot or the current one."""
    labels = (
        features.scan(snapshot_id=snapshot_id, selected_fields=("predicted_label",))
        .to_arrow()
        .column("predicted_label")
    )
    return len(labels), int(pc.sum(pc.is_valid(labels)).as_py() or 0)


def rows_by_batch(features: Table) -> dict[int, dict[str, int]]:
    """Rows each stream micro-batch appended to the features table and how many of them carry a
    prediction, from the table's snapshots (each batch's commit names its batch id)."""
    counted: dict[int, dict[str, int]] = {}
    rows_before = scored_before = 0
    for snapshot in sorted(features.snapshots(), key=lambda snapshot: snapshot.sequence_number or 0):
        rows, scored = rows_with_a_prediction(features, snapshot.snapshot_id)
        batch_id = snapshot.summary[BATCH_ID_PROPERTY] if snapshot.summary is not None else None
        if batch_id is not None:
            counted[int(batch_id)] = {"rows": rows - rows_before, "scored_rows": scored - scored_before}
        rows_before, scored_before = rows, scored
    return counted
