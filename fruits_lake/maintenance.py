"""`fruits lake maintain`: row retention, compaction, snapshot expiry and orphan removal, per table.

The order matters: old rows go first (compaction would rewrite them for nothing),
then the small files are compacted, then snapshots past the retention expire
(releasing the files compaction and retention replaced), and last the files no
kept snapshot references are deleted. Every commit is optimistic: when the stream
commits in between, pyiceberg raises CommitFailedException and the step is
retried on the refreshed table (fruits_lake.commit_retry, which also waits out a
busy catalog or storage), so maintenance is safe while the stream runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError
from pyiceberg.expressions import LessThan
from pyiceberg.table import Table
from pyiceberg.transforms import DayTransform

from fruits_core.clock import utc_now
from fruits_core.errors import ConfigError
from fruits_lake.catalog import FEATURES_TABLE, NAMESPACE
from fruits_lake.commit_retry import DEFAULT_POLICY, RetryPolicy, run_with_retry
from fruits_lake.compaction import MAINTENANCE_PROPERTY, compact_partition, data_files_per_partition
from fruits_lake.maintenance_defaults import DEFAULT_RETENTION_DAYS, DEFAULTS
from fruits_lake.orphans import remove_orphan_files
from fruits_lake.snapshots import expire_snapshots

T = TypeVar("T")


@dataclass(frozen=True)
class MaintainOptions:
    """What each step keeps; the defaults are the CLI's (maintenance_defaults)."""

    snapshot_retention: timedelta = timedelta(days=DEFAULTS["snapshot_retention_days"])
    keep_snapshots: int = DEFAULTS["keep_snapshots"]
    orphan_min_age: timedelta = timedelta(hours=DEFAULTS["orphan_min_age_hours"])
    # Rows older than this many days are deleted; None keeps every row.
    retention_days: int | None = DEFAULT_RETENTION_DAYS
    retry: RetryPolicy = DEFAULT_POLICY


@dataclass
class TableReport:
    table: str
    rows_deleted: int = 0
    retention_cutoff: str | None = None
    partitions_compacted: int = 0
    files_before: int = 0
    files_after: int = 0
    snapshots_expired: int = 0
    snapshots_kept: int = 0
    orphan_files_removed: int = 0
    commit_retries: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def retention_cutoff(now: datetime, days: int) -> datetime:
    """UTC midnight `days` days before `now`: whole days go, so a delete drops whole partitions."""
    day = (now.astimezone(UTC) - timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def day_partition_column(table: Table) -> str:
    """The timestamp column the table's day partition is derived from (contracts' *_PARTITION)."""
    for partition_field in table.spec().fields:
        if isinstance(partition_field.transform, DayTransform):
            return table.schema().find_column_name(partition_field.source_id)
    raise ValueError(f"{table.name()} has no day partition: row retention needs one")


def delete_rows_before(table: Table, cutoff: datetime) -> int:
    """Delete the rows dated before `cutoff` (a UTC midnight) in one commit; returns how many."""
    predicate = LessThan(day_partition_column(table), cutoff.isoformat())
    # The cutoff is a day boundary, so the files the filter selects lie wholly before it.
    doomed = sum(task.file.record_count for task in table.scan(row_filter=predicate).plan_files())
    if doomed:
        table.delete(predicate, snapshot_properties={MAINTENANCE_PROPERTY: "retention"})
    return doomed


def with_commit_retry(
    table: Table, report: TableReport, step: Callable[[], T], policy: RetryPolicy = DEFAULT_POLICY
) -> T:
    """Run a committing step with the lake's retry policy, each retry on the refreshed table."""
    retried = False

    def attempt() -> T:
        if retried:
            table.refresh()
        return step()

    def count(_: BaseException) -> None:
        nonlocal retried
        retried = True
        report.commit_retries += 1

    return run_with_retry(attempt, f"maintenance of {report.table}", policy, on_retry=count)


def compact(table: Table, report: TableReport, policy: RetryPolicy) -> None:
    counts = data_files_per_partition(table)
    report.files_before = sum(counts.values())
    for partition, files in sorted(counts.items(), key=lambda item: (item[0].spec_id, str(item[0].values))):
        if files > 1:
            # Each attempt re-reads the partition: a concurrent append may have added rows to it.
            with_commit_retry(
                table, report, lambda partition=partition: compact_partition(table, partition), policy
            )
            report.partitions_compacted += 1
    report.files_after = sum(data_files_per_partition(table).values())


def maintain_table(
    identifier: str, table: Table, options: MaintainOptions, clock: Callable[[], datetime]
) -> TableReport:
    """Each step reads the clock when it starts: the expiry then covers this run's own commits."""
    report = TableReport(table=identifier)
    table.refresh()
    if options.retention_days is not None:
        cutoff = retention_cutoff(clock(), options.retention_days)
        report.retention_cutoff = cutoff.isoformat()
        report.rows_deleted = with_commit_retry(
            table, report, lambda: delete_rows_before(table, cutoff), options.retry
        )
    compact(table, report, options.retry)
    report.snapshots_expired = with_commit_retry(
        table,
        report,
        lambda: expire_snapshots(table, clock() - options.snapshot_retention, options.keep_snapshots),
        options.retry,
    )
    report.snapshots_kept = len(table.snapshots())
    report.orphan_files_removed = len(remove_orphan_files(table, clock() - options.orphan_min_age))
    return report


def maintain_lake(
    catalog: Catalog, options: MaintainOptions, clock: Callable[[], datetime] = utc_now
) -> list[TableReport]:
    """Maintain every table of the lake's namespace: features, errors and the features tables a
    model change archived (`fruits.features_<pca version>`), whose old rows expire too."""
    try:
        identifiers = sorted(".".join((NAMESPACE, name)) for _, name in catalog.list_tables(NAMESPACE))
    except NoSuchNamespaceError:
        identifiers = []
    if FEATURES_TABLE not in identifiers:
        raise ConfigError(f"the lake has no table {FEATURES_TABLE}: the stream creates it on its first batch")
    return [maintain_table(name, catalog.load_table(name), options, clock) for name in identifiers]
