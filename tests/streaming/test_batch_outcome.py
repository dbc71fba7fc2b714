"""Splitting a collected micro-batch into the features and errors outputs, and its figures (pure Arrow)."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from fruits_core import contracts
from streaming_job.query.batch_outcome import (
    DETAIL_COLUMN,
    ERROR_KEY_COLUMN,
    FEATURIZED_COLUMNS,
    REASON_COLUMN,
    split_outcome,
)


def utc(hour: int, minute: int, second: int) -> datetime:
    return datetime(2024, 5, 1, hour, minute, second, tzinfo=UTC)


def featurized_row(image_id: str | None, reason: str | None = None, **changes) -> dict:
    row = {name: None for name in FEATURIZED_COLUMNS}
    row.update(
        image_id=image_id,
        image_uri=f"file:///lake/clean/dt=2024-05-01/{image_id}.jpg",
        uploaded_at="2024-05-01T08:00:00.000Z",
        ingested_at="2024-05-01T08:00:01.000Z",
        processed_at="2024-05-01T08:00:03.000Z",
    )
    if reason is None:
        row.update(features=[0.5, -0.25], pca_residual=0.125, model_version="m1", pca_version="p1")
    else:
        row.update(
            **{REASON_COLUMN: reason, DETAIL_COLUMN: f"why {image_id}", ERROR_KEY_COLUMN: f"key {image_id}"}
        )
    row.update(changes)
    return row


def featurized_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows)


def test_a_batch_splits_into_contract_shaped_features_and_errors():
    # GIVEN a featurized image, an unreadable one and a malformed manifest
    table = featurized_table(
        [
            featurized_row("a" * 32),
            featurized_row("b" * 32, reason="image_not_found"),
            featurized_row(None, reason="malformed_manifest", image_uri=None),
        ]
    )
    # WHEN split
    outcome = split_outcome(table)
    # THEN the features and errors tables have exactly the contract's columns, in order
    assert outcome.features.column_names == contracts.field_names(contracts.FEATURES_FIELDS)
    assert outcome.errors.column_names == contracts.field_names(contracts.ERROR_FIELDS)
    assert outcome.features.column("image_id").to_pylist() == ["a" * 32]
    assert outcome.features.column("features").to_pylist() == [[0.5, -0.25]]
    assert outcome.features.schema.field("features").type.value_type == pa.float32()
    # AND the manifest's ISO strings became UTC instants
    assert outcome.features.column("uploaded_at").to_pylist() == [utc(8, 0, 0)]
    assert outcome.features.schema.field("uploaded_at").type == pa.timestamp("us", tz="UTC")
    assert outcome.errors.to_pylist() == [
        {
            "image_id": "b" * 32,
            "image_uri": f"file:///lake/clean/dt=2024-05-01/{'b' * 32}.jpg",
            "reason": "image_not_found",
            "detail": f"why {'b' * 32}",
            "processed_at": utc(8, 0, 3),
            "error_key": f"key {'b' * 32}",
        },
        {
            "image_id": None,
            "image_uri": None,
            "reason": "malformed_manifest",
            "detail": "why None",
            "processed_at": utc(8, 0, 3),
            "error_key": "key None",
        },
    ]
    # AND the figures cover every manifest row
    stats = outcome.stats(model_builds=2, already_in_table=0)
    assert (stats.manifest_rows, stats.feature_rows, stats.error_rows) == (3, 1, 2)
    assert stats.model_builds == 2
    assert stats.latency_p50_ms == stats.latency_p95_ms == 2_000.0


def test_an_image_id_seen_twice_in_a_batch_is_published_once_and_the_repeat_is_an_error_row():
    # GIVEN two manifests of the same image, both featurized (the key layout should make this impossible)
    first = featurized_row("c" * 32, features=[1.0, 1.0])
    second = featurized_row("c" * 32, features=[1.0, 1.0], image_uri="file:///other.jpg")
    # WHEN split
    outcome = split_outcome(featurized_table([first, second, featurized_row("d" * 32)]))
    # THEN one features row per image, the repeat is an error row, and both manifests count as read
    assert outcome.features.column("image_id").to_pylist() == ["c" * 32, "d" * 32]
    assert outcome.errors.column("image_id").to_pylist() == ["c" * 32]
    assert outcome.errors.column("reason").to_pylist() == ["duplicate_image_id"]
    assert outcome.errors.column("image_uri").to_pylist() == ["file:///other.jpg"]
    stats = outcome.stats(model_builds=0, already_in_table=0)
    assert (stats.manifest_rows, stats.feature_rows, stats.error_rows) == (3, 2, 1)


def test_an_error_row_does_not_make_a_later_features_row_a_duplicate():
    # GIVEN an image first unreadable, then featurized from another manifest in the same batch
    rows = [featurized_row("e" * 32, reason="image_not_found"), featurized_row("e" * 32)]
    # WHEN split THEN the features row is published, the error row kept as it was
    outcome = split_outcome(featurized_table(rows))
    assert outcome.features.column("image_id").to_pylist() == ["e" * 32]
    assert outcome.errors.column("reason").to_pylist() == ["image_not_found"]


def test_latency_percentiles_come_from_the_features_rows_only():
    # GIVEN latencies of 1, 2, ..., 20 s and an error row
    rows = [
        featurized_row(f"{index:032x}", processed_at=f"2024-05-01T08:00:{1 + index:02d}.000Z")
        for index in range(1, 21)
    ]
    rows.append(
        featurized_row("e" * 32, reason="image_decode_failed", processed_at="2024-05-01T09:00:00.000Z")
    )
    # WHEN measured
    stats = split_outcome(featurized_table(rows)).stats(model_builds=0, already_in_table=0)
    # THEN p50 and p95 are those of the 20 features rows
    assert stats.latency_p50_ms == pytest.approx(10_500.0)
    assert stats.latency_p95_ms == pytest.approx(19_050.0)


def test_a_batch_without_features_has_no_latency_rather_than_zero():
    outcome = split_outcome(featurized_table([featurized_row("f" * 32, reason="image_not_found")]))
    stats = outcome.stats(model_builds=0, already_in_table=0)
    assert (stats.feature_rows, stats.latency_p50_ms, stats.latency_p95_ms) == (0, None, None)


def test_an_empty_batch_splits_into_two_empty_tables():
    empty = pa.Table.from_pylist([featurized_row("a" * 32)]).slice(0, 0)
    outcome = split_outcome(empty)
    assert (outcome.features.num_rows, outcome.errors.num_rows, outcome.manifest_rows) == (0, 0, 0)


def test_a_features_row_with_an_unreadable_timestamp_becomes_a_malformed_manifest_error():
    # GIVEN featurized rows whose manifests carry a bad uploaded_at, an ingested_at without a zone,
    # an unreadable optional captured_hour, a missing optional one, and one fully readable
    rows = [
        featurized_row("1" * 32, uploaded_at="yesterday"),
        featurized_row("2" * 32, ingested_at="2024-05-01T08:00:00"),
        featurized_row("3" * 32, captured_hour="noon"),
        featurized_row("4" * 32, captured_hour=None),
        featurized_row("5" * 32, captured_hour="2024-05-01T07:00:00.000Z"),
    ]
    # WHEN split
    outcome = split_outcome(featurized_table(rows))
    # THEN the bad ones are error rows naming the field, and the good ones keep their instants
    assert outcome.errors.column("image_id").to_pylist() == ["1" * 32, "2" * 32, "3" * 32]
    assert set(outcome.errors.column("reason").to_pylist()) == {"malformed_manifest"}
    assert outcome.errors.column("detail").to_pylist() == [
        "uploaded_at is not an ISO 8601 timestamp with a time zone",
        "ingested_at is not an ISO 8601 timestamp with a time zone",
        "captured_hour is not an ISO 8601 timestamp with a time zone",
    ]
    assert outcome.features.column("captured_hour").to_pylist() == [None, utc(7, 0, 0)]
    stats = outcome.stats(model_builds=0, already_in_table=0)
    assert (stats.manifest_rows, stats.feature_rows, stats.error_rows) == (5, 2, 3)


def test_rows_already_in_the_table_are_not_counted_as_new_features():
    outcome = split_outcome(featurized_table([featurized_row("a" * 32), featurized_row("b" * 32)]))
    stats = outcome.stats(model_builds=0, already_in_table=1)
    assert (stats.feature_rows, stats.already_in_table) == (1, 1)


def test_a_table_missing_a_column_is_refused_with_its_name():
    table = featurized_table([featurized_row("a" * 32)]).drop_columns([REASON_COLUMN])
    with pytest.raises(ValueError, match=REASON_COLUMN):
        split_outcome(table)
