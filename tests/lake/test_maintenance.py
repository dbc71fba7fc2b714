"""`fruits lake maintain` on a real local lake (SQLite catalog, pyiceberg tables, Parquet files).

The lake is what the stream leaves: one append per micro-batch, so each day holds
several small files and each table many snapshots.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.exceptions import CommitFailedException
from small_files_lake import (
    BATCHES_PER_DAY,
    DAYS,
    age_files,
    build_small_files_lake,
    feature_rows,
)

from fruits_cli.main import main as fruits
from fruits_lake.catalog import ERRORS_TABLE, FEATURES_TABLE, ensure_tables, open_catalog
from fruits_lake.compaction import Partition, compact_partition, data_files_per_partition
from fruits_lake.maintenance import MaintainOptions, TableReport, maintain_lake, with_commit_retry
from fruits_lake.orphans import (
    ListedFile,
    OrphanScanError,
    location_path,
    orphans,
    referenced_files,
    remove_orphan_files,
)
from fruits_lake.snapshots import snapshots_to_expire


def _rows(table) -> list[tuple]:
    """Every row as (image_id, vector, timestamp...), sorted: what must survive maintenance unchanged."""
    data = table.scan().to_arrow().to_pylist()
    return sorted(
        tuple((key, tuple(value) if isinstance(value, list) else value) for key, value in row.items())
        for row in data
    )


def _folder(table) -> Path:
    return Path(location_path(table.location()))


def _files_on_disk(table) -> set[str]:
    return {str(path) for path in _folder(table).rglob("*") if path.is_file()}


def _plant(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pq.write_table(pa.table({"x": [1]}), path)
    else:
        path.write_text("{}")
    return path


def _maintain(lake: Path, capsys, *flags: str) -> dict[str, dict]:
    assert fruits(["lake", "maintain", "--lake", lake.as_uri(), "--json", *flags]) == 0
    report = json.loads(capsys.readouterr().out)
    return {table["table"]: table for table in report["tables"]}


def test_maintain_compacts_to_one_file_per_partition_expires_and_removes_orphans_idempotently(
    tmp_path: Path, capsys
):
    # GIVEN a lake with 4 small appends per day over 3 days in each table, and planted orphans
    features, errors = build_small_files_lake(tmp_path)
    before = {FEATURES_TABLE: _rows(features), ERRORS_TABLE: _rows(errors)}
    planted = [
        _plant(_folder(features) / "data" / "dt=2020-01-01" / "left-by-a-failed-commit.parquet"),
        _plant(_folder(errors) / "metadata" / "00099-never-committed.metadata.json"),
    ]
    # AND every file written three days ago (older than the orphan minimum age)
    age_files(tmp_path, timedelta(days=3))
    on_disk_before = {
        name: _files_on_disk(table) for name, table in ((FEATURES_TABLE, features), (ERRORS_TABLE, errors))
    }
    started = datetime.now(UTC).timestamp()

    # WHEN maintain runs, expiring every snapshot but the newest
    report = _maintain(tmp_path, capsys, "--snapshot-retention-days", "0", "--keep-snapshots", "1")

    catalog = open_catalog(tmp_path.as_uri())
    for name in (FEATURES_TABLE, ERRORS_TABLE):
        table = catalog.load_table(name)
        # THEN each of the 3 partitions has exactly one data file
        assert sorted(data_files_per_partition(table).values()) == [1, 1, 1]
        assert report[name]["partitions_compacted"] == 3
        assert (report[name]["files_before"], report[name]["files_after"]) == (3 * BATCHES_PER_DAY, 3)
        # AND the rows are the same (ids, vectors, timestamps)
        assert _rows(table) == before[name]
        # AND only the newest snapshot is left
        assert len(table.snapshots()) == 1 and report[name]["snapshots_kept"] == 1
        # AND every referenced file is on disk; of the old files only referenced ones are left (the
        # unreferenced files this run wrote itself are younger than the orphan minimum age)
        on_disk = _files_on_disk(table)
        referenced = referenced_files(table)
        assert referenced <= on_disk
        assert {path for path in on_disk - referenced if Path(path).stat().st_mtime < started} == set()
        assert report[name]["orphan_files_removed"] == len(on_disk_before[name] - on_disk)
        # AND the data files on disk are the 3 compacted ones
        assert len([path for path in on_disk if path.endswith(".parquet")]) == 3
    assert not any(path.exists() for path in planted)

    # WHEN it runs again THEN there is nothing left to do and the rows are unchanged
    again = _maintain(tmp_path, capsys, "--snapshot-retention-days", "0", "--keep-snapshots", "1")
    for name in (FEATURES_TABLE, ERRORS_TABLE):
        counts = again[name]
        assert (
            counts["partitions_compacted"],
            counts["snapshots_expired"],
            counts["orphan_files_removed"],
        ) == (0, 0, 0)
        assert counts["rows_deleted"] == 0
        assert _rows(catalog.load_table(name)) == before[name]


def test_referenced_and_young_files_are_never_removed(tmp_path: Path, capsys):
    # GIVEN a compacted lake whose replaced small files are still referenced by kept snapshots
    features, _ = build_small_files_lake(tmp_path)
    _maintain(tmp_path, capsys)  # default: snapshots kept 7 days
    features.refresh()
    referenced = referenced_files(features)
    # AND every file is two days old, except an orphan written just now
    age_files(tmp_path, timedelta(days=2))
    old = _plant(_folder(features) / "data" / "dt=2020-01-01" / "old-orphan.parquet")
    age_files(tmp_path, timedelta(days=2))
    young = _plant(_folder(features) / "data" / "dt=2020-01-01" / "commit-in-flight.parquet")

    # WHEN maintain runs with the default ages
    report = _maintain(tmp_path, capsys)

    # THEN the old orphan is gone, the young one stays, and every referenced file (the replaced
    # small files included: their snapshots are kept) is still on disk
    assert not old.exists() and young.exists()
    assert report[FEATURES_TABLE]["orphan_files_removed"] == 1
    on_disk = _files_on_disk(features)
    assert referenced <= on_disk
    # (the 12 small files and the 3 compacted ones)
    assert len([path for path in referenced if path.endswith(".parquet")]) == 3 * BATCHES_PER_DAY + 3


def test_rows_older_than_the_retention_are_deleted_whole_days_at_a_time(tmp_path: Path):
    # GIVEN a lake with three recent days and one day 400 days ago
    old_day = DAYS[0] - timedelta(days=400)
    build_small_files_lake(tmp_path, days=(old_day, *DAYS))
    catalog = open_catalog(str(tmp_path))
    recent = {
        name: [row for row in _rows(catalog.load_table(name)) if dict(row)[column] >= DAYS[0]]
        for name, column in ((FEATURES_TABLE, "uploaded_at"), (ERRORS_TABLE, "processed_at"))
    }

    # WHEN maintain runs with the default retention (365 days)
    reports = {r.table: r for r in maintain_lake(catalog, MaintainOptions())}

    # THEN the old day's rows are gone from both tables and the recent ones untouched
    assert reports[FEATURES_TABLE].rows_deleted == BATCHES_PER_DAY * 3
    assert reports[ERRORS_TABLE].rows_deleted == BATCHES_PER_DAY
    for name in (FEATURES_TABLE, ERRORS_TABLE):
        assert _rows(catalog.load_table(name)) == recent[name]


def test_a_commit_that_loses_the_race_to_the_stream_is_retried_on_the_new_state(tmp_path: Path):
    # GIVEN maintenance's handle on the features table, loaded before the stream's next commit
    build_small_files_lake(tmp_path)
    catalog = open_catalog(str(tmp_path))
    maintenance_handle = catalog.load_table(FEATURES_TABLE)
    partition = Partition(0, ((DAYS[0] - datetime(1970, 1, 1, tzinfo=UTC)).days,))
    stream_handle = catalog.load_table(FEATURES_TABLE)
    late_rows = feature_rows(DAYS[0], batch=9)
    stream_handle.append(late_rows)
    # (the stale handle alone cannot commit: the catalog refuses it)
    with pytest.raises(CommitFailedException):
        compact_partition(maintenance_handle, partition)

    # WHEN the compaction runs through the retry
    report = TableReport(table=FEATURES_TABLE)
    with_commit_retry(maintenance_handle, report, lambda: compact_partition(maintenance_handle, partition))

    # THEN it was retried once, the partition is one file, and the stream's rows are in it
    assert report.commit_retries == 1
    table = catalog.load_table(FEATURES_TABLE)
    assert data_files_per_partition(table)[partition] == 1
    ids = set(table.scan().to_arrow().column("image_id").to_pylist())
    assert set(late_rows.column("image_id").to_pylist()) <= ids
    assert len(ids) == 3 * BATCHES_PER_DAY * 3 + len(late_rows)


def test_snapshot_selection_keeps_the_newest_the_young_and_the_branch_heads():
    snapshots = [(1, 100), (2, 200), (3, 300), (4, 400), (5, 500)]
    # older than 450, keep the 2 newest (5, 4), and 1 is a tag's head
    assert snapshots_to_expire(snapshots, protected={1}, older_than_ms=450, keep_last=2) == [3, 2]
    assert snapshots_to_expire(snapshots, protected=set(), older_than_ms=250, keep_last=1) == [2, 1]
    assert snapshots_to_expire(snapshots, protected=set(), older_than_ms=1000, keep_last=5) == []


def test_orphan_selection_never_picks_a_referenced_or_young_file():
    now = datetime(2026, 1, 10, tzinfo=UTC)
    old, young = now - timedelta(days=2), now - timedelta(minutes=1)
    listed = [
        ListedFile("/lake/features/data/a.parquet", old),  # referenced, old
        ListedFile("/lake/features/data/b.parquet", old),  # orphan, old
        ListedFile("/lake/features/data/c.parquet", young),  # orphan, in flight
    ]
    referenced = {"/lake/features/data/a.parquet"}
    assert orphans(listed, referenced, modified_before=now - timedelta(days=1)) == [
        "/lake/features/data/b.parquet"
    ]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--orphan-min-age-hours", "0.5"], "--orphan-min-age-hours must be at least 1"),
        (["--keep-snapshots", "0"], "--keep-snapshots must be at least 1"),
        (["--retention-days", "-1"], "--retention-days must be 0"),
        (["--snapshot-retention-days", "-2"], "--snapshot-retention-days must be 0 or more"),
    ],
)
def test_bad_flags_stop_with_rc_2_before_touching_the_lake(tmp_path: Path, capsys, flags, message):
    assert fruits(["lake", "maintain", "--lake", tmp_path.as_uri(), *flags]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_lake_without_tables_is_a_configuration_error(tmp_path: Path, capsys):
    assert fruits(["lake", "maintain", "--lake", tmp_path.as_uri()]) == 2
    assert "has no table fruits.features" in capsys.readouterr().err


def test_the_text_output_has_one_line_per_table_and_step(tmp_path: Path, capsys):
    build_small_files_lake(tmp_path)
    assert fruits(["lake", "maintain", "--lake", tmp_path.as_uri(), "--retention-days", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    steps = [line.split()[:2] for line in lines]
    tables = sorted((FEATURES_TABLE, ERRORS_TABLE))
    assert steps == [[t, s] for t in tables for s in ("retention", "compact", "expire", "orphans", "retries")]
    assert all("3 partitions rewritten, 12 data files -> 3" in lines[i] for i in (1, 6))
    assert "off: every row kept" in lines[0]


def test_a_features_table_archived_by_a_model_change_is_maintained_too(tmp_path: Path):
    # GIVEN a lake whose features table (with a day past the retention) was archived by a model change
    old_day = DAYS[0] - timedelta(days=400)
    build_small_files_lake(tmp_path, days=(old_day, DAYS[0]))
    catalog = open_catalog(str(tmp_path))
    archived = f"{FEATURES_TABLE}_pca_old"
    catalog.rename_table(FEATURES_TABLE, archived)
    ensure_tables(catalog)

    # WHEN maintain runs
    reports = {report.table: report for report in maintain_lake(catalog, MaintainOptions())}

    # THEN the archived table is maintained beside the live ones: its old rows go, its day is compacted
    assert set(reports) == {FEATURES_TABLE, ERRORS_TABLE, archived}
    assert reports[archived].rows_deleted == BATCHES_PER_DAY * 3
    assert sorted(data_files_per_partition(catalog.load_table(archived)).values()) == [1]


def test_a_listing_that_misses_a_live_file_deletes_nothing(tmp_path: Path):
    # GIVEN a table one of whose live data files the listing will not show, and an old orphan
    features, _ = build_small_files_lake(tmp_path)
    orphan = _plant(_folder(features) / "data" / "dt=2020-01-01" / "old-orphan.parquet")
    age_files(tmp_path, timedelta(days=2))
    live = next(iter(features.scan().plan_files())).file.file_path
    Path(location_path(live)).unlink()
    # WHEN orphans are removed THEN it refuses, and the orphan is still there
    with pytest.raises(OrphanScanError, match="not in the listing"):
        remove_orphan_files(features, datetime.now(UTC) - timedelta(days=1))
    assert orphan.exists()
