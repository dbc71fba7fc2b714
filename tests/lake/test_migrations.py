"""Schema evolution: a lake written by the previous version is migrated, then appended to and read."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.schema import Schema
from pyiceberg.types import NestedField, StringType

from fruits_core import contracts
from fruits_core.errors import ConfigError
from fruits_lake.catalog import (
    FEATURES_TABLE,
    NAMESPACE,
    TABLE_PROPERTIES,
    ensure_tables,
    new_features_location,
    open_catalog,
)
from fruits_lake.migrations import check_evolvable, migrate, missing_columns
from fruits_lake.schemas import FEATURES_SCHEMA, arrow_schema, conform_rows, iceberg_schema, partition_spec

# The features columns of the version before predictions (what every lake written until then holds).
PREDICTION_COLUMNS = ("predicted_label", "prediction_confidence", "classifier_version")
PREVIOUS_FIELDS = tuple(field for field in contracts.FEATURES_FIELDS if field[0] not in PREDICTION_COLUMNS)
MOMENT = datetime(2026, 3, 1, 12, tzinfo=UTC)


def rows(ids: list[str], schema: pa.Schema, **extra) -> pa.Table:
    count = len(ids)
    columns = {
        "image_id": ids,
        "label": ["apple"] * count,
        "uploaded_at": [MOMENT] * count,
        "ingested_at": [MOMENT] * count,
        "processed_at": [MOMENT] * count,
        "features": [[0.5, -0.5]] * count,
        "pca_residual": [0.1] * count,
        "model_version": ["m"] * count,
        "pca_version": ["p"] * count,
        **extra,
    }
    return conform_rows(pa.table(columns), schema)


def previous_version_lake(lake: Path):
    """A lake as the previous version wrote it: the features table without the prediction columns, one row."""
    catalog = open_catalog(str(lake))
    catalog.create_namespace_if_not_exists(NAMESPACE)
    schema = iceberg_schema(PREVIOUS_FIELDS)
    table = catalog.create_table(
        FEATURES_TABLE,
        schema=schema,
        location=new_features_location(lake.as_uri()),
        partition_spec=partition_spec(schema, contracts.FEATURES_PARTITION),
        properties=TABLE_PROPERTIES,
    )
    table.append(rows(["a" * 32], arrow_schema(schema)))
    return table


def test_a_lake_of_the_previous_version_gains_the_columns_and_takes_new_rows(tmp_path: Path):
    # GIVEN a lake written by the previous version, and a reader that opened its table before the change
    reader = previous_version_lake(tmp_path)
    assert missing_columns(reader.schema(), FEATURES_SCHEMA) == list(PREDICTION_COLUMNS)
    # WHEN this version opens its tables (what the stream does before its first append)
    features, _ = ensure_tables(open_catalog(str(tmp_path)))
    # THEN the same table (no new one) has every column of the contract, the new ones optional
    assert features.location() == reader.location()
    assert [field.name for field in features.schema().fields] == contracts.field_names(
        contracts.FEATURES_FIELDS
    )
    assert all(not features.schema().find_field(name).required for name in PREDICTION_COLUMNS)
    # AND a row with predictions appends; the old row reads its prediction columns as null
    features.append(
        rows(
            ["b" * 32],
            arrow_schema(FEATURES_SCHEMA),
            predicted_label=["apple"],
            prediction_confidence=[0.97],
            classifier_version=["c1"],
        )
    )
    table = features.scan().to_arrow().sort_by("image_id")
    assert table.column("predicted_label").to_pylist() == [None, "apple"]
    assert table.column("classifier_version").to_pylist() == [None, "c1"]
    # AND the reader opened before the migration still scans its snapshot
    assert reader.scan().to_arrow().column("image_id").to_pylist() == ["a" * 32]


def test_migrating_twice_commits_nothing_more(tmp_path: Path):
    previous_version_lake(tmp_path)
    features, _ = ensure_tables(open_catalog(str(tmp_path)))
    metadata = features.metadata_location
    assert migrate(features, FEATURES_SCHEMA).metadata_location == metadata
    again, _ = ensure_tables(open_catalog(str(tmp_path)))
    assert again.metadata_location == metadata


def test_a_new_required_column_is_refused_with_its_name():
    current = Schema(NestedField(1, "image_id", StringType(), required=True))
    target = Schema(
        NestedField(1, "image_id", StringType(), required=True),
        NestedField(2, "fruit", StringType(), required=True),
    )
    with pytest.raises(ConfigError, match="column fruit is new and required"):
        check_evolvable(current, target)


def test_a_type_change_is_refused():
    from pyiceberg.types import FloatType

    current = Schema(NestedField(1, "score", StringType(), required=False))
    target = Schema(NestedField(1, "score", FloatType(), required=False))
    with pytest.raises(ConfigError, match="a type change needs a new table"):
        check_evolvable(current, target)
