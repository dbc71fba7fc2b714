"""Compaction: rewrite each partition holding several data files as one file, in one commit.

The stream appends one commit per micro-batch, so a day accumulates hundreds of
small files that every reader must open. pyiceberg 0.10 has no rewrite-data-files
action; an overwrite filtered on exactly the partition's bounds is the same thing:
the old files match the filter whole, so they are dropped (not rewritten) and the
partition's rows are appended again as one file, all in one atomic commit.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pyiceberg.expressions import And, BooleanExpression, EqualTo, GreaterThanOrEqual, IsNull, LessThan
from pyiceberg.partitioning import PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import DayTransform, IdentityTransform

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Snapshot summary key marking commits of `fruits lake maintain` (the stream's carry fruits.batch-id).
MAINTENANCE_PROPERTY = "fruits.maintenance"


@dataclass(frozen=True)
class Partition:
    """One partition of one spec: its values in the spec's field order."""

    spec_id: int
    values: tuple


def data_files_per_partition(table: Table) -> Counter[Partition]:
    """How many live data files each partition of the current snapshot has."""
    counts: Counter[Partition] = Counter()
    for task in table.scan().plan_files():
        data_file = task.file
        counts[Partition(data_file.spec_id, tuple(data_file.partition))] += 1
    return counts


def partition_filter(spec: PartitionSpec, schema: Schema, values: tuple) -> BooleanExpression:
    """A row filter matching exactly the rows of the partition (day: [midnight, next midnight))."""
    terms: list[BooleanExpression] = []
    for field, value in zip(spec.fields, values, strict=True):
        column = schema.find_column_name(field.source_id)
        if value is None:
            terms.append(IsNull(column))
        elif isinstance(field.transform, DayTransform):
            start = EPOCH + timedelta(days=value)
            terms.append(GreaterThanOrEqual(column, start.isoformat()))
            terms.append(LessThan(column, (start + timedelta(days=1)).isoformat()))
        elif isinstance(field.transform, IdentityTransform):
            terms.append(EqualTo(column, value))
        else:
            raise ValueError(f"cannot compact a partition field with transform {field.transform}")
    if not terms:
        raise ValueError("cannot compact an unpartitioned table by partition")
    return terms[0] if len(terms) == 1 else And(*terms)


def compact_partition(table: Table, partition: Partition) -> None:
    """Replace the partition's files by one, atomically (CommitFailedException on a concurrent commit)."""
    predicate = partition_filter(table.specs()[partition.spec_id], table.schema(), partition.values)
    rows = table.scan(row_filter=predicate).to_arrow()
    with table.transaction() as transaction:
        transaction.overwrite(
            rows, overwrite_filter=predicate, snapshot_properties={MAINTENANCE_PROPERTY: "compaction"}
        )
