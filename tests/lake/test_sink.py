"""The Iceberg sink on a real local table: one commit per table and batch, replays and re-reads skipped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.expressions import In

from fruits_core import contracts
from fruits_lake.catalog import (
    BATCH_ID_PROPERTY,
    FEATURES_TABLE,
    LAKE_PROPERTY,
    PCA_VERSION_PROPERTY,
    QUERY_ID_PROPERTY,
    ensure_tables,
    open_catalog,
)
from fruits_lake.commit_retry import RetryPolicy
from fruits_lake.erased_subjects import tombstone_listing
from fruits_lake.erasure import SubjectMatch, erase_from_table
from fruits_lake.reading import committed_rows
from fruits_lake.schemas import ERRORS_ARROW_SCHEMA, FEATURES_ARROW_SCHEMA, conform_rows
from fruits_lake.sink import (
    CLOCK_SKEW_MARGIN,
    SinkHooks,
    TableSink,
    TableSwitchedError,
    commit_properties,
    committed_by,
    reread_horizon,
    rows_to_check,
)

UPLOADED = datetime(2026, 3, 1, 22, tzinfo=UTC)
QUERY = "6f1c2d7e-0000-4000-8000-000000000001"
PCA = "pca-k2-000000000000"
ALICE = "a" * 64
BOB = "b" * 64


def feature_rows(
    ids: list[str],
    uploaded: datetime = UPLOADED,
    ingested: datetime | None = None,
    subject: str | None = None,
) -> pa.Table:
    count = len(ids)
    return conform_rows(
        pa.table(
            {
                "image_id": ids,
                "subject_id": [subject] * count,
                "key_version": [None] * count,
                "label": ["apple"] * count,
                "region": [None] * count,
                "captured_hour": [None] * count,
                "uploaded_at": [uploaded + timedelta(hours=index) for index in range(count)],
                "ingested_at": [ingested or uploaded] * count,
                "processed_at": [uploaded] * count,
                "features": [[0.5, -0.5]] * count,
                "pca_residual": [0.1] * count,
                "model_version": ["m"] * count,
                "pca_version": [PCA] * count,
            }
        ),
        FEATURES_ARROW_SCHEMA,
    )


def error_rows(count: int, ids: list[str] | None = None, keys: list[str] | None = None) -> pa.Table:
    return conform_rows(
        pa.table(
            {
                "image_id": pa.array(ids if ids is not None else [None] * count, pa.string()),
                "image_uri": pa.array([None] * count, pa.string()),
                "reason": ["malformed_manifest"] * count,
                "detail": ["unparseable"] * count,
                "processed_at": [UPLOADED] * count,
                "error_key": pa.array(keys if keys is not None else [None] * count, pa.string()),
            }
        ),
        ERRORS_ARROW_SCHEMA,
    )


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


def test_a_new_query_rereading_bad_manifests_adds_no_error_row_twice(sink: TableSink):
    # GIVEN two error rows (of image ids) and one of a manifest without an id, written by a first query
    ids = image_ids(2, start=50)
    sink.write(feature_rows([]), pa.concat_tables([error_rows(2, ids), error_rows(1)]), QUERY, 0)
    owners = pa.table({"subject_id": pa.nulls(4, pa.string()), "ingested_at": [UPLOADED] * 4}).cast(
        pa.schema([("subject_id", pa.string()), ("ingested_at", pa.timestamp("us", tz="UTC"))])
    )
    # WHEN another query re-reads them, with one new bad manifest
    reread = pa.concat_tables([error_rows(3, [*ids, image_ids(1, start=60)[0]]), error_rows(1)])
    result = sink.write(feature_rows([]), reread, "another-query", 0, owners)
    # THEN the two known ones are not appended again: the new one and the id-less one are
    assert result.errors_already_in_table == 2 and result.error_rows_in_table == 2
    stored = sink.errors.refresh().scan().to_arrow().column("image_id").to_pylist()
    assert sorted(stored, key=str) == sorted([*ids, image_ids(1, start=60)[0], None, None], key=str)


def test_an_error_row_without_an_image_id_is_known_by_its_manifest_line_on_a_reread(sink: TableSink):
    # GIVEN two error rows without an image id (a garbage line, a 0-byte manifest), written by a first query
    keys = [
        contracts.error_key("dt=2026-03-01/a.jsonl", "not json {"),
        contracts.error_key("dt=2026-03-01/b.jsonl", ""),
    ]
    sink.write(feature_rows([]), error_rows(2, keys=keys), QUERY, 0)
    # WHEN another query (a reset checkpoint, a new epoch, a backfill) re-reads them, with one new bad line
    new = contracts.error_key("dt=2026-03-01/a.jsonl", "[1, 2]")
    result = sink.write(feature_rows([]), error_rows(3, keys=[*keys, new]), "another-query", 0)
    # THEN only the new line's row is appended; a replay of that batch adds nothing either
    assert (result.errors_already_in_table, result.error_rows_in_table) == (2, 1)
    replay = sink.write(feature_rows([]), error_rows(3, keys=[*keys, new]), "another-query", 0)
    assert not replay.errors_committed
    stored = sink.errors.refresh().scan().to_arrow().column("error_key").to_pylist()
    assert sorted(stored) == sorted([*keys, new])


def test_a_replay_reports_the_rows_its_first_run_committed(sink: TableSink):
    # GIVEN a batch whose run committed both tables and was killed before Spark logged it
    sink.write(feature_rows(image_ids(3)), error_rows(2), QUERY, 5)
    # WHEN it is replayed THEN nothing is appended, and its rows are reported (for the status totals)
    result = sink.write(feature_rows(image_ids(3)), error_rows(2), QUERY, 5)
    assert not (result.features_committed or result.errors_committed)
    assert (result.feature_rows_in_table, result.error_rows_in_table) == (3, 2)


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


def test_a_commit_refused_by_a_concurrent_writer_is_retried_on_the_new_metadata(tmp_path: Path, caplog):
    # GIVEN a sink whose commit another writer (maintenance, a backfill) beats once, between the
    # sink's read of the metadata and its commit
    catalog = open_catalog(str(tmp_path))
    other_handle = ensure_tables(catalog)[0]
    sink = racing_sink(tmp_path, lambda: other_handle.refresh().append(feature_rows(image_ids(1, start=100))))
    # WHEN the sink writes a batch
    with caplog.at_level("WARNING", logger="fruits_lake.commit_retry"):
        result = sink.write(feature_rows(image_ids(2)), error_rows(0), QUERY, 0)
    # THEN Iceberg refused the stale commit, the sink retried on the new metadata, both writes are kept
    assert result.features_committed and "attempt 1 failed (CommitFailedException" in caplog.text
    assert table_ids(sink) == sorted([*image_ids(2), *image_ids(1, start=100)])
    assert len(sink.features.metadata.snapshots) == 2


def test_an_erasure_during_a_batch_in_flight_never_lets_the_subject_back(tmp_path: Path):
    # GIVEN a batch holding rows of alice and bob, and an erasure of alice that writes her tombstone
    # and completes between the sink's read of the tombstones and its commit
    catalog = open_catalog(str(tmp_path))
    batch = pa.concat_tables(
        [feature_rows(image_ids(3), subject=ALICE), feature_rows(image_ids(2, start=10), subject=BOB)]
    )
    sink = racing_sink(tmp_path, lambda: erase_subject_from_features(tmp_path, catalog, ALICE))
    # WHEN the sink writes the batch
    result = sink.write(batch, error_rows(0), QUERY, 0)
    # THEN the commit planned before the erasure's fence failed, the retry read her tombstone and
    # dropped her rows: no row of hers is in the table, bob's are
    assert result.erased_rows == 3 and result.features_committed
    stored = sink.features.refresh().scan().to_arrow()
    assert ALICE not in stored.column("subject_id").to_pylist()
    assert sorted(stored.column("image_id").to_pylist()) == image_ids(2, start=10)


def test_an_upload_after_the_erasure_and_its_clock_margin_is_a_new_one_and_kept(tmp_path: Path):
    features, errors = ensure_tables(open_catalog(str(tmp_path)))
    erased_at = UPLOADED + timedelta(days=1)
    sink = TableSink(features, errors, PCA, erased_subjects=lambda: {ALICE: erased_at})
    before = feature_rows(image_ids(1), subject=ALICE, ingested=erased_at - timedelta(hours=1))
    after = feature_rows(image_ids(1, start=5), subject=ALICE, ingested=erased_at + timedelta(days=31))
    result = sink.write(pa.concat_tables([before, after]), error_rows(0), QUERY, 0)
    assert result.erased_rows == 1 and table_ids(sink) == image_ids(1, start=5)


def test_a_second_query_committing_the_same_images_meanwhile_adds_no_duplicate(tmp_path: Path):
    # GIVEN a backfill query (another checkpoint) that appends the same images between the live
    # sink's lookup of what is already in the table and its commit
    catalog = open_catalog(str(tmp_path))
    backfill = TableSink(*ensure_tables(catalog), PCA)
    rows = feature_rows(image_ids(4))
    sink = racing_sink(tmp_path, lambda: backfill.write(rows, error_rows(0), "backfill-query", 0))
    # WHEN the live sink writes them too
    result = sink.write(rows, error_rows(0), QUERY, 0)
    # THEN its retry looked again, found them all, and appended none: each image is in the table once
    assert result.already_in_table == 4 and not result.features_committed
    assert table_ids(sink) == image_ids(4)


def test_a_table_renamed_by_a_model_change_never_takes_the_old_models_rows(tmp_path: Path):
    # GIVEN a stream of the old model, and a restart with --new-model-table that renames the table
    # and creates a new one under the same name between the sink's refresh and its commit
    catalog = open_catalog(str(tmp_path))

    def switch_model():
        catalog.rename_table(FEATURES_TABLE, f"{FEATURES_TABLE}_old")
        ensure_tables(catalog)

    sink = racing_sink(tmp_path, switch_model)
    # WHEN the old stream writes a batch THEN it is refused, and neither table got its rows
    with pytest.raises(TableSwitchedError, match="another table"):
        sink.write(feature_rows(image_ids(2)), error_rows(0), QUERY, 0)
    assert committed_rows(catalog.load_table(FEATURES_TABLE)) == 0
    assert committed_rows(catalog.load_table(f"{FEATURES_TABLE}_old")) == 0


def racing_sink(lake: Path, interleave) -> TableSink:
    """A sink on the lake's tables whose first commit attempt is preceded by `interleave()`."""
    catalog = open_catalog(str(lake))
    features, errors = ensure_tables(catalog)
    done = []

    def before_commit(table_name: str) -> None:
        if not done:
            done.append(table_name)
            interleave()

    return TableSink(
        features,
        errors,
        PCA,
        erased_subjects=tombstone_listing(catalog.properties[LAKE_PROPERTY], features.io),
        policy=RetryPolicy(sleep=lambda _: None),
        hooks=SinkHooks(before_commit=before_commit),
    )


def erase_subject_from_features(lake: Path, catalog, subject: str) -> None:
    """What `fruits subject erase` does to the features table: tombstone first, then fence and delete."""
    tombstone = lake / contracts.tombstone_key(subject)
    tombstone.parent.mkdir(parents=True, exist_ok=True)
    tombstone.write_text("{}")
    erase_from_table(
        lambda: catalog.load_table(FEATURES_TABLE),
        SubjectMatch(In("subject_id", [subject]), "subject_id", frozenset({subject})),
        "request-1",
        lambda: datetime.now(UTC),
    )
