"""`fruits subject export|erase` on a local lake whose features and errors are Iceberg tables.

The rows are the real ingest's manifests turned into table rows, one commit per subject (so
the erased rows sit in older snapshots too); the erasure must leave no row, no snapshot that
still references one, and no file on disk that holds the subject's pseudonym or image ids.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from fruits_core import contracts
from fruits_lake.catalog import ERRORS_TABLE, FEATURES_TABLE, open_catalog
from tests.privacy.subject_testkit import (
    SUBJECTS,
    erase,
    export,
    fill_tables,
    lake_files,
    pseudonym,
    subjects_lake,
)


@pytest.fixture
def lake(tmp_path, sample_image_paths, monkeypatch):
    lake_dir, uploads = subjects_lake(tmp_path, sample_image_paths[::19], monkeypatch)
    fill_tables(lake_dir, uploads)
    return lake_dir, uploads


def table_rows(lake_dir, identifier) -> list[dict]:
    table = open_catalog(lake_dir.as_uri()).load_table(identifier)
    return sorted(table.scan().to_arrow().to_pylist(), key=lambda row: row["image_id"])


def traces_on_disk(lake_dir, needles: list[str]) -> list[str]:
    """Files whose name or content holds a needle: Parquet decoded value by value, other files as bytes."""
    found = []
    for path in sorted(p for p in lake_dir.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            text = json.dumps(pq.read_table(path).to_pylist(), default=str)
            hit = any(needle in text for needle in needles)
        else:
            data = path.read_bytes()
            hit = any(needle.encode() in data for needle in needles)
        if hit or any(needle in path.name for needle in needles):
            found.append(path.relative_to(lake_dir).as_posix())
    return found


def test_export_lists_the_subjects_table_rows_without_the_vectors(lake, tmp_path):
    lake_dir, uploads = lake
    user_id = SUBJECTS["bob"][contracts.META_USER_ID]
    document = export(lake_dir, user_id, tmp_path / "bob.json")
    assert sorted(row["image_id"] for row in document["feature_rows"]) == sorted(uploads["bob"].accepted)
    assert all(
        "features" not in row and row["subject_id"] == pseudonym(user_id) for row in document["feature_rows"]
    )
    assert [row["image_id"] for row in document["error_rows"]] == [uploads["bob"].accepted[1]]


def test_erase_leaves_no_row_snapshot_or_file_of_the_subject(lake, tmp_path, capsys):
    lake_dir, uploads = lake
    alice_id = SUBJECTS["alice"][contracts.META_USER_ID]
    alice = pseudonym(alice_id)
    alice_images = uploads["alice"].accepted + uploads["alice"].quarantined
    others_features = [r for r in table_rows(lake_dir, FEATURES_TABLE) if r["subject_id"] != alice]
    others_errors = [r for r in table_rows(lake_dir, ERRORS_TABLE) if r["image_id"] not in alice_images]
    # Her pseudonym (whole, and as the 16-character prefix Iceberg keeps as a column bound) is on disk
    needles = [alice, alice[:16], *alice_images, *(image_id[:16] for image_id in alice_images)]
    assert traces_on_disk(lake_dir, needles)

    audit = erase(lake_dir, alice_id, capsys)

    # THEN her rows are gone from both tables, the others' rows are unchanged
    assert table_rows(lake_dir, FEATURES_TABLE) == others_features
    assert table_rows(lake_dir, ERRORS_TABLE) == others_errors
    assert audit["counts"]["feature_rows"] == 2 and audit["counts"]["error_rows"] == 1
    assert audit["counts"]["table_files_removed"] > 0
    # AND no older snapshot is left to time-travel to her rows
    catalog = open_catalog(lake_dir.as_uri())
    for identifier in (FEATURES_TABLE, ERRORS_TABLE):
        table = catalog.load_table(identifier)
        assert [s.snapshot_id for s in table.metadata.snapshots] == [table.current_snapshot().snapshot_id]
    # AND no file on disk (data, manifests, metadata, objects) holds her pseudonym or image ids
    assert traces_on_disk(lake_dir, needles) == [contracts.tombstone_key(alice)]
    # AND her export is empty, and a second erase finds nothing
    document = export(lake_dir, alice_id, tmp_path / "alice.json")
    assert document["feature_rows"] == document["error_rows"] == document["manifests"] == []
    files = {path for path in lake_files(lake_dir) if not path.startswith(contracts.AUDIT_PREFIX)}
    second = erase(lake_dir, alice_id, capsys)
    # (each erasure fences every table with an empty commit: only table metadata changes)
    counted = {kind: count for kind, count in second["counts"].items() if kind != "table_files_removed"}
    assert set(counted.values()) == {0}
    after = {path for path in lake_files(lake_dir) if not path.startswith(contracts.AUDIT_PREFIX)}
    assert all("/metadata/" in path for path in after ^ files)
