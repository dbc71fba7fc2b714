"""The Iceberg sink on a real local table: one commit per table and batch, replays and re-reads skipped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from fruits_lake.catalog import (
    BATCH_ID_PROPERTY,
    PCA_VERSION_PROPERTY,
    QUERY_ID_PROPERTY,
    ensure_tables,
    open_catalog,
)
from fruits_lake.reading import committed_rows
from streaming_job.sink import (
    CLOCK_SKEW_MARGIN,
    TableSink,
    commit_properties,
    committed_by,
    reread_horizon,
    rows_to_check,
)
from tests import table_rows

UPLOADED = datetime(2026, 3, 1, 22, tzinfo=UTC)
QUERY = "6f1c2d7e-0000-4000-8000-000000000001"
PCA = "pca-k2-000000000000"


def feature_rows(ids: list[str], uploaded: datetime = UPLOADED, ingested: datetime | None = None) -> pa.Table:
    """One row an hour from `uploaded`, all ingested at `ingested` (default: `uploaded`)."""
    return table_rows.feature_rows(
        ids,
        uploaded_at=[uploaded + timedelta(hours=index) for index in range(len(ids))],
        ingested_at=ingested or uploaded,
        processed_at=uploaded,
        pca_version=PCA,
    )


def error_rows(count: int) -> pa.Table:
    return table_rows.error_rows([None] * count, processed_at=UPLOADED)


def image_ids(count: int, start: int = 0) -> list[str]:
    return [f"{index:032x}" for index in range(start, start + count)]


@pytest.fixture
def sink(tmp_path: Path) -> TableSink:
    features, errors = ensure_tables(open_catalog(str(tmp_path)))
    return TableSink(features, errors, PCA)


def table_ids(sink: TableSink) -> list[str]:
    return sorted(sink.features.refresh().scan().to_arrow().column("image_id").to_pylist())


def test_a_batch_is_one_commit_per_table_tagged_with_its_query_batch_and_pca(sink: TableSink):
    # WHEN a batch of 5 features rows (spanning a day boundary) and 2 error rows is written
    result = sink.write(feature_rows(image_ids(5)), error_rows(2), QUERY, 7)
    # THEN each table got one snapshot carrying the query id, batch id and PCA version
    assert (result.features_committed, result.errors_committed, result.already_in_table) == (True, True, 0)
    for table, rows in ((sink.features, 5), (sink.errors, 2)):
        (snapshot,) = table.refresh().metadata.snapshots
        assert snapshot.summary[QUERY_ID_PROPERTY] == QUERY
        assert snapshot.summary[BATCH_ID_PROPERTY] == "7"
        assert snapshot.summary[PCA_VERSION_PROPERTY] == PCA
        assert committed_rows(table) == rows
    assert table_ids(sink) == image_ids(5)


def test_a_replayed_batch_finds_its_commits_and_adds_nothing(sink: TableSink):
    sink.write(feature_rows(image_ids(3)), error_rows(1), QUERY, 0)
    # WHEN Spark replays batch 0 of the same query (a driver killed before logging its commit)
    result = sink.write(feature_rows(image_ids(3)), error_rows(1), QUERY, 0)
    # THEN no table changes
    assert (result.features_committed, result.errors_committed) == (False, False)
    assert [len(table.refresh().metadata.snapshots) for table in (sink.features, sink.errors)] == [1, 1]
    assert (committed_rows(sink.features), committed_rows(sink.errors)) == (3, 1)


def test_a_replay_after_the_features_commit_only_appends_the_errors(sink: TableSink):
    # GIVEN a batch whose features were committed when the driver died (before the errors commit)
    sink.features.append(feature_rows(image_ids(3)), snapshot_properties=commit_properties(QUERY, 4, PCA))
    # WHEN it is replayed
    result = sink.write(feature_rows(image_ids(3)), error_rows(2), QUERY, 4)
    # THEN only the errors are appended
    assert (result.features_committed, result.errors_committed) == (False, True)
    assert (committed_rows(sink.features.refresh()), committed_rows(sink.errors.refresh())) == (3, 2)


def test_a_new_query_rereading_manifests_skips_the_images_already_in_the_table(sink: TableSink):
    # GIVEN 4 images written by a first checkpoint's query
    sink.write(feature_rows(image_ids(4)), error_rows(0), QUERY, 0)
    # WHEN a reset checkpoint (new query id, batch ids from 0 again) re-reads them with 3 new ones
    reread = feature_rows(image_ids(7))
    result = sink.write(reread, error_rows(0), "another-query", 0)
    # THEN only the new ones are appended, the 4 counted as already in the table, nothing deleted
    assert result.already_in_table == 4
    assert table_ids(sink) == image_ids(7)


def test_a_batch_of_images_already_in_the_table_commits_nothing(sink: TableSink):
    sink.write(feature_rows(image_ids(2)), error_rows(0), QUERY, 0)
    result = sink.write(feature_rows(image_ids(2)), error_rows(0), "another-query", 0)
    assert (result.features_committed, result.already_in_table) == (False, 2)
    assert len(sink.features.refresh().metadata.snapshots) == 1


def test_an_image_id_uploaded_another_day_is_not_taken_for_a_reread(sink: TableSink):
    # GIVEN an image id in the table (ids are unique by construction; this checks the day pruning's bounds)
    sink.write(feature_rows(image_ids(1)), error_rows(0), QUERY, 0)
    # WHEN a row with that id but uploaded a week later arrives
    later = feature_rows(image_ids(1), uploaded=UPLOADED + timedelta(days=7))
    result = sink.write(later, error_rows(0), QUERY, 1)
    # THEN the scan over the batch's own upload range does not see the earlier row
    assert (result.features_committed, result.already_in_table) == (True, 0)


def test_an_empty_batch_commits_nothing(sink: TableSink):
    result = sink.write(feature_rows([]), error_rows(0), QUERY, 0)
    assert (result.features_committed, result.errors_committed) == (False, False)
    assert sink.features.refresh().metadata.snapshots == sink.errors.refresh().metadata.snapshots == []
    assert not committed_by(sink.features, QUERY, 0)


def test_only_rows_ingested_before_another_querys_last_commit_are_looked_up(sink: TableSink):
    # GIVEN a table written only by this query: nothing it reads can be there already
    sink.write(feature_rows(image_ids(2)), error_rows(0), QUERY, 0)
    assert reread_horizon(sink.features.refresh(), QUERY) is None
    assert rows_to_check(feature_rows(image_ids(3, start=2)), None).num_rows == 0
    # WHEN a new query (a reset checkpoint) looks at the table
    horizon = reread_horizon(sink.features, "another-query")
    (snapshot,) = sink.features.metadata.snapshots
    # THEN rows ingested up to its last commit (plus the clock margin) are looked up, not later ones
    assert horizon == datetime.fromtimestamp(snapshot.timestamp_ms / 1000, tz=UTC) + CLOCK_SKEW_MARGIN
    old = feature_rows(image_ids(2), ingested=horizon - timedelta(seconds=1))
    new = feature_rows(image_ids(1, start=2), ingested=horizon + timedelta(seconds=1))
    assert rows_to_check(pa.concat_tables([old, new]), horizon).column("image_id").to_pylist() == image_ids(2)


def test_a_commit_refused_by_a_concurrent_writer_is_retried_on_the_new_metadata(
    sink: TableSink, tmp_path: Path, caplog
):
    # GIVEN another writer (an erasure, maintenance) that committed through its own handle after the
    # sink's handle last read the table's metadata
    other_handle = open_catalog(str(tmp_path)).load_table(sink.features.name())
    other_handle.append(feature_rows(image_ids(1, start=100)))
    # WHEN the sink appends with its stale metadata
    with caplog.at_level("WARNING", logger="streaming_job.sink"):
        appended = sink._append(sink.features, feature_rows(image_ids(2)), commit_properties(QUERY, 0, PCA))
    # THEN Iceberg refused the stale commit, the sink retried on the new metadata, and both writes are kept
    assert appended and "commit refused" in caplog.text
    assert table_ids(sink) == sorted([*image_ids(2), *image_ids(1, start=100)])
    assert len(sink.features.metadata.snapshots) == 2
