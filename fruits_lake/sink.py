"""Exactly-once appends of a micro-batch's rows to the features and errors tables (driver side).

Spark re-runs a micro-batch whose commit it did not log (a killed driver) with
the same offsets, hence the same rows. Each append therefore carries the
streaming query's id and the batch id in its snapshot summary; before
appending, the sink looks for a snapshot of the table with both and, if one
exists, skips that table: the earlier attempt committed it. The query id is
Spark's, persisted in the checkpoint, so it is stable across restarts of one
checkpoint and new for a new one.

A new or reset checkpoint re-reads manifests that may already be in the table
(with `--clean-source off`, all of them). Feature rows whose image_id is
already in the table are skipped, found with a filtered scan over the upload
days the batch touches (hidden partitioning prunes every other day). Only rows
that another query could have written are looked up: those ingested before
that query's last commit (plus a margin for clocks that disagree). In steady
state that is none, so a batch reads no data file. Nothing is ever deleted: a
checkpoint can no longer destroy data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThanOrEqual
from pyiceberg.table import Table

from fruits_lake.catalog import BATCH_ID_PROPERTY, PCA_VERSION_PROPERTY, QUERY_ID_PROPERTY

log = logging.getLogger(__name__)

DEDUP_KEY = "image_id"
DEDUP_TIME = "uploaded_at"
INGEST_TIME = "ingested_at"
# Ingest (Lambda) and driver clocks may disagree by this much: rows ingested this long after another
# query's last commit are still looked up.
CLOCK_SKEW_MARGIN = timedelta(minutes=10)
# Another writer (a subject erasure, maintenance) may commit between our refresh and our commit:
# Iceberg then refuses ours, and an append can simply be retried on the new metadata.
COMMIT_ATTEMPTS = 5


@dataclass(frozen=True)
class SinkResult:
    """What one micro-batch's write did to the tables."""

    features_committed: bool
    errors_committed: bool
    # Feature rows not appended because their image_id was already in the table (a re-read manifest).
    already_in_table: int


def commit_properties(query_id: str, batch_id: int, pca_version: str) -> dict[str, str]:
    """The snapshot summary entries of a stream commit."""
    return {QUERY_ID_PROPERTY: query_id, BATCH_ID_PROPERTY: str(batch_id), PCA_VERSION_PROPERTY: pca_version}


def committed_by(table: Table, query_id: str, batch_id: int) -> bool:
    """Whether a snapshot of `table` was committed by this query's micro-batch `batch_id`.

    Newest first: a replay is of the latest batches, so the search usually stops at once.
    """
    wanted = str(batch_id)
    for snapshot in reversed(table.metadata.snapshots):
        summary = snapshot.summary
        if (
            summary is not None
            and summary[QUERY_ID_PROPERTY] == query_id
            and summary[BATCH_ID_PROPERTY] == wanted
        ):
            return True
    return False


def reread_horizon(table: Table, query_id: str) -> datetime | None:
    """Rows ingested up to this moment may be in the table already (None: every commit is this query's).

    This query never reads a manifest twice (a replay is caught by committed_by), so only
    another query's commits (an earlier checkpoint's, maintenance's) can hold a batch's rows.
    """
    others = [
        snapshot.timestamp_ms
        for snapshot in table.metadata.snapshots
        if snapshot.summary is None or snapshot.summary[QUERY_ID_PROPERTY] != query_id
    ]
    if not others:
        return None
    return datetime.fromtimestamp(max(others) / 1000, tz=UTC) + CLOCK_SKEW_MARGIN


def rows_to_check(rows: pa.Table, horizon: datetime | None) -> pa.Table:
    """The rows that may already be in the table: those ingested up to the horizon."""
    if horizon is None:
        return rows.slice(0, 0)
    return rows.filter(
        pc.less_equal(rows.column(INGEST_TIME), pa.scalar(horizon, rows.schema.field(INGEST_TIME).type))
    )


def existing_ids(table: Table, rows: pa.Table) -> set[str]:
    """The image_ids of `rows` already in `table`, read only from the upload days `rows` spans.

    A re-read manifest carries the same upload time as the row it gave before, so the
    range [earliest, latest upload] of the rows finds every earlier copy. The ids are
    matched in Arrow after the scan: an `In` filter of thousands of ids in the scan
    itself measured 10x slower (2 s against 0.2 s for 8000 ids over 80,000 rows).
    """
    if rows.num_rows == 0:
        return set()
    earliest, latest = pc.min_max(rows.column(DEDUP_TIME)).values()
    row_filter = And(
        GreaterThanOrEqual(DEDUP_TIME, earliest.as_py().isoformat()),
        LessThanOrEqual(DEDUP_TIME, latest.as_py().isoformat()),
    )
    stored = table.scan(row_filter=row_filter, selected_fields=(DEDUP_KEY,)).to_arrow().column(DEDUP_KEY)
    present = stored.filter(pc.is_in(stored, value_set=rows.column(DEDUP_KEY).combine_chunks()))
    return set(present.to_pylist())


def without_ids(rows: pa.Table, ids: set[str]) -> pa.Table:
    if not ids:
        return rows
    return rows.filter(pc.invert(pc.is_in(rows.column(DEDUP_KEY), value_set=pa.array(sorted(ids)))))


class TableSink:
    """Writes one micro-batch to the features table, then to the errors table, each at most once."""

    def __init__(self, features: Table, errors: Table, pca_version: str) -> None:
        self.features = features
        self.errors = errors
        self.pca_version = pca_version

    def write(self, features: pa.Table, errors: pa.Table, query_id: str, batch_id: int) -> SinkResult:
        """Append the batch's rows (features first); a table already holding this batch is skipped.

        An empty append is skipped too: it would only add an empty snapshot.
        """
        properties = commit_properties(query_id, batch_id, self.pca_version)
        already_in_table = 0
        features_committed = False
        self.features.refresh()
        if not committed_by(self.features, query_id, batch_id):
            horizon = reread_horizon(self.features, query_id)
            present = existing_ids(self.features, rows_to_check(features, horizon))
            already_in_table = len(present)
            features_committed = self._append(self.features, without_ids(features, present), properties)
        self.errors.refresh()
        errors_committed = False
        if not committed_by(self.errors, query_id, batch_id):
            errors_committed = self._append(self.errors, errors, properties)
        return SinkResult(features_committed, errors_committed, already_in_table)

    def _append(self, table: Table, rows: pa.Table, properties: dict[str, str]) -> bool:
        if rows.num_rows == 0:
            return False
        for _ in range(COMMIT_ATTEMPTS - 1):
            try:
                table.append(rows, snapshot_properties=properties)
                return True
            except CommitFailedException as conflict:
                log.warning("%s: commit refused (%s), retrying on the new metadata", table.name(), conflict)
                table.refresh()
        # The last attempt: a refusal now fails the batch, which Spark then re-runs.
        table.append(rows, snapshot_properties=properties)
        return True
