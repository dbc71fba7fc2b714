"""Splitting a collected micro-batch into the features and errors outputs, and its figures (pure Arrow)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from fruits_core import contracts
from streaming_job.batch_outcome import (
    DETAIL_COLUMN,
    FEATURIZED_COLUMNS,
    REASON_COLUMN,
    latencies_ms,
    split_outcome,
)


def featurized_row(image_id: str | None, reason: str | None = None, **changes) -> dict:
    row = {name: None for name in FEATURIZED_COLUMNS}
    row.update(
        image_id=image_id,
        image_uri=f"file:///lake/clean/dt=2024-05-01/{image_id}.jpg",
        uploaded_at="2024-05-01T08:00:00.000Z",
        ingested_at="2024-05-01T08:00:01.000Z",
        processed_at="2024-05-01T08:00:03.000Z",
        dt="2024-05-01",
    )
    if reason is None:
        row.update(features=[0.5, -0.25], pca_residual=0.125, model_version="m1", pca_version="p1")
    else:
        row.update(**{REASON_COLUMN: reason, DETAIL_COLUMN: f"why {image_id}"})
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
    assert outcome.errors.to_pylist() == [
        {
            "image_id": "b" * 32,
            "image_uri": f"file:///lake/clean/dt=2024-05-01/{'b' * 32}.jpg",
            "reason": "image_not_found",
            "detail": f"why {'b' * 32}",
            "processed_at": "2024-05-01T08:00:03.000Z",
            "dt": "2024-05-01",
        },
        {
            "image_id": None,
            "image_uri": None,
            "reason": "malformed_manifest",
            "detail": "why None",
            "processed_at": "2024-05-01T08:00:03.000Z",
            "dt": "2024-05-01",
        },
    ]
    # AND the figures cover every manifest row
    stats = outcome.stats(model_builds=2)
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
    stats = outcome.stats(model_builds=0)
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
    stats = split_outcome(featurized_table(rows)).stats(model_builds=0)
    # THEN p50 and p95 are those of the 20 features rows
    assert stats.latency_p50_ms == pytest.approx(10_500.0)
    assert stats.latency_p95_ms == pytest.approx(19_050.0)


def test_a_batch_without_features_has_no_latency_rather_than_zero():
    outcome = split_outcome(featurized_table([featurized_row("f" * 32, reason="image_not_found")]))
    stats = outcome.stats(model_builds=0)
    assert (stats.feature_rows, stats.latency_p50_ms, stats.latency_p95_ms) == (0, None, None)


def test_an_empty_batch_splits_into_two_empty_tables():
    empty = pa.Table.from_pylist([featurized_row("a" * 32)]).slice(0, 0)
    outcome = split_outcome(empty)
    assert (outcome.features.num_rows, outcome.errors.num_rows, outcome.manifest_rows) == (0, 0, 0)


def test_unreadable_timestamps_are_left_out_of_the_latencies():
    # GIVEN a foreign manifest's ingested_at that is not ISO 8601, one without a zone, and a good one
    ingested = ["yesterday", "2024-05-01T08:00:00", "2024-05-01T08:00:00.000Z", None]
    processed = ["2024-05-01T08:00:02.000Z"] * 4
    # THEN only the good one is measured
    assert latencies_ms(ingested, processed) == [2_000.0]


def test_a_table_missing_a_column_is_refused_with_its_name():
    table = featurized_table([featurized_row("a" * 32)]).drop_columns([REASON_COLUMN])
    with pytest.raises(ValueError, match=REASON_COLUMN):
        split_outcome(table)
