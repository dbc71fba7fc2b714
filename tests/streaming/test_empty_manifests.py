"""0-byte manifests of a batch -> error rows (pure part; the real stream: test_error_rows.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from fruits_core import contracts
from streaming_job.query.empty_manifests import EMPTY_DETAIL, empty_files, empty_manifest_errors

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_only_the_batchs_files_listed_with_zero_bytes_are_empty_whatever_the_spelling():
    batch = ["file:///lake/manifests/dt=2026-03-01/a.json", "file:///lake/manifests/dt=2026-03-01/b.jsonl"]
    listing = {
        "file:/lake/manifests/dt%3D2026-03-01/a.json": 0,
        "file:/lake/manifests/dt=2026-03-01/b.jsonl": 120,
        "file:/lake/manifests/dt=2026-03-01/not-in-the-batch.json": 0,
    }
    assert empty_files(batch, listing) == [batch[0]]
    # a file gone since the batch was planned (an erasure) is not reported
    assert empty_files(batch, {}) == []


def test_an_empty_manifest_is_a_malformed_manifest_row_keyed_by_its_path():
    named = "file:///lake/manifests/dt=2026-03-01/" + "6" * 32 + ".json"
    group = "s3://bucket/manifests/dt=2026-03-01/" + "a" * 32 + ".jsonl"
    errors, owners = empty_manifest_errors([named, group], NOW)
    assert errors.column_names == contracts.field_names(contracts.ERROR_FIELDS)
    rows = errors.to_pylist()
    assert [row["image_id"] for row in rows] == ["6" * 32, None]
    assert {row["reason"] for row in rows} == {"malformed_manifest"}
    assert {row["detail"] for row in rows} == {EMPTY_DETAIL}
    assert [row["error_key"] for row in rows] == [
        contracts.error_key("dt=2026-03-01/" + "6" * 32 + ".json", ""),
        contracts.error_key("dt=2026-03-01/" + "a" * 32 + ".jsonl", ""),
    ]
    assert owners.to_pylist() == [{"subject_id": None, "ingested_at": None}] * 2


def test_the_error_key_is_the_same_for_an_archived_or_replayed_copy_of_a_manifest():
    live = "s3://lake/manifests/dt=2026-03-01/x.jsonl"
    archived = "s3://lake/archive/manifests/dt%3D2026-03-01/x.jsonl"
    assert contracts.manifest_relative_path(live) == contracts.manifest_relative_path(archived)
    assert len(contracts.error_key("dt=2026-03-01/x.jsonl", "")) == contracts.ERROR_KEY_HEX
