"""Iceberg schemas, partition specs and Arrow schemas of the lake's tables, from fruits_core.contracts.

The contracts stay stdlib-only (the ingest Lambda ships them); this module is
their one translation into table types, shared by the writer and every reader.
"""

from __future__ import annotations

import pyarrow as pa
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform, Transform
from pyiceberg.types import (
    FloatType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from fruits_core import contracts

_SCALAR_TYPES: dict[str, IcebergType] = {
    "string": StringType(),
    "int": IntegerType(),
    "long": LongType(),
    "float": FloatType(),
    # Always UTC: timestamptz, so every engine (Athena, Spark, DuckDB) reads the same instant.
    "timestamp": TimestamptzType(),
}
_TRANSFORMS: dict[str, Transform] = {"day": DayTransform()}
# Partition field ids start here, as Iceberg numbers them.
_FIRST_PARTITION_FIELD_ID = 1000


def iceberg_schema(fields: tuple[tuple[str, str], ...]) -> Schema:
    """A schema from a contracts field list; a trailing `?` makes the column optional."""
    columns = []
    next_nested_id = len(fields) + 1
    for field_id, (name, kind) in enumerate(fields, start=1):
        base_kind = kind.rstrip("?")
        if base_kind == "array<float>":
            # A vector has no missing components: its elements are required.
            field_type: IcebergType = ListType(next_nested_id, FloatType(), element_required=True)
            next_nested_id += 1
        elif base_kind in _SCALAR_TYPES:
            field_type = _SCALAR_TYPES[base_kind]
        else:
            raise ValueError(f"field {name!r} has a type the table schemas do not know: {kind!r}")
        columns.append(NestedField(field_id, name, field_type, required=not kind.endswith("?")))
    return Schema(*columns)


def partition_spec(schema: Schema, partition: tuple[str, str, str]) -> PartitionSpec:
    """The hidden partitioning (name, transform, source column) of a table with `schema`."""
    name, transform, source = partition
    return PartitionSpec(
        PartitionField(
            source_id=schema.find_field(source).field_id,
            field_id=_FIRST_PARTITION_FIELD_ID,
            transform=_TRANSFORMS[transform],
            name=name,
        )
    )


FEATURES_SCHEMA = iceberg_schema(contracts.FEATURES_FIELDS)
ERRORS_SCHEMA = iceberg_schema(contracts.ERROR_FIELDS)
FEATURES_SPEC = partition_spec(FEATURES_SCHEMA, contracts.FEATURES_PARTITION)
ERRORS_SPEC = partition_spec(ERRORS_SCHEMA, contracts.ERRORS_PARTITION)


def arrow_schema(schema: Schema) -> pa.Schema:
    """The Arrow schema a table's appends must have (required columns not nullable)."""
    return schema_to_pyarrow(schema, include_field_ids=False)


FEATURES_ARROW_SCHEMA = arrow_schema(FEATURES_SCHEMA)
ERRORS_ARROW_SCHEMA = arrow_schema(ERRORS_SCHEMA)


def conform_rows(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """`rows` in `schema`'s column order and types, optional columns it lacks filled with nulls.

    Rows built before a column was added (a writer's fixture, an older tool) stay appendable.
    """
    columns = [
        rows.column(field.name) if field.name in rows.column_names else pa.nulls(rows.num_rows, field.type)
        for field in schema
    ]
    return pa.table(columns, names=schema.names).cast(schema)
