"""Spark schemas of the stream's input and worker rows, from the field lists in fruits_core/contracts.py.

The manifest schema is always given explicitly to `readStream` (never inferred),
so a malformed or foreign manifest cannot change the query's schema.
"""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    DataType,
    FloatType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from fruits_core import contracts

# Column that PERMISSIVE JSON parsing fills with the raw text of a manifest it cannot parse.
CORRUPT_RECORD_COLUMN = "_corrupt_record"

_SPARK_TYPES: dict[str, DataType] = {
    "string": StringType(),
    "int": IntegerType(),
    "long": LongType(),
    "float": FloatType(),
    "array<float>": ArrayType(FloatType(), containsNull=False),
}


def struct_type(fields: tuple[tuple[str, str], ...]) -> StructType:
    """A StructType from a contracts field list (`"type?"` marks a nullable field)."""
    struct_fields = []
    for name, kind in fields:
        nullable = kind.endswith("?")
        base_kind = kind.rstrip("?")
        if base_kind not in _SPARK_TYPES:
            raise ValueError(f"field {name!r} has a type the schemas do not know: {kind!r}")
        struct_fields.append(StructField(name, _SPARK_TYPES[base_kind], nullable=nullable))
    return StructType(struct_fields)


def manifest_read_schema() -> StructType:
    """Manifest v1 as read by the stream: every field nullable, plus the corrupt-record column.

    JSON sources read every field as nullable anyway; required fields are checked
    row by row instead, so a manifest that lacks one becomes an error row.
    """
    fields = [StructField(f.name, f.dataType, nullable=True) for f in struct_type(contracts.MANIFEST_FIELDS)]
    return StructType([*fields, StructField(CORRUPT_RECORD_COLUMN, StringType(), nullable=True)])
