"""Schema evolution of the lake's tables: a table created by an earlier version gains the new columns.

A column is added in one place, its line in `fruits_core/contracts.py`; the
table's schema (fruits_lake.schemas) follows, and `migrate` brings an existing
table to it with Iceberg's schema evolution before the stream's first append:
a metadata-only commit, no data file rewritten, no new table, readers never
stopped (rows written before read the new columns as null). Only optional
columns may be added that way: a required one would have no value in the old
rows, so it is refused with the column named. Columns are never dropped,
renamed or retyped here: that is a new table (table_versions' rule for a new model).
"""

from __future__ import annotations

import logging

from pyiceberg.schema import Schema
from pyiceberg.table import Table

from fruits_core.errors import ConfigError

log = logging.getLogger(__name__)


def missing_columns(current: Schema, target: Schema) -> list[str]:
    """Top-level columns of `target` that `current` lacks, in `target`'s order."""
    present = {field.name for field in current.fields}
    return [field.name for field in target.fields if field.name not in present]


def check_evolvable(current: Schema, target: Schema) -> None:
    """ConfigError unless `target` only appends optional columns to `current` (same types otherwise)."""
    wanted_by_name = {field.name: field for field in target.fields}
    for field in current.fields:
        wanted = wanted_by_name.get(field.name)
        if wanted is not None and type(wanted.field_type) is not type(field.field_type):
            raise ConfigError(
                f"column {field.name} is {field.field_type} in the table and {wanted.field_type} in this "
                "version: a type change needs a new table"
            )
    for name in missing_columns(current, target):
        if target.find_field(name).required:
            raise ConfigError(
                f"column {name} is new and required: rows written before it would have no value; "
                "add it as optional (`?` in fruits_core/contracts.py)"
            )


def migrate(table: Table, target: Schema) -> Table:
    """Add `target`'s missing optional columns to `table` (idempotent: nothing to add, no commit)."""
    check_evolvable(table.schema(), target)
    added = missing_columns(table.schema(), target)
    if not added:
        return table
    with table.update_schema() as update:
        for name in added:
            field = target.find_field(name)
            update.add_column(name, field.field_type, doc=field.doc, required=False)
    log.warning(
        "%s migrated: column(s) %s added (older rows read them as null)", table.name(), ", ".join(added)
    )
    return table
