"""The table part of an erasure: one subject's rows out of one Iceberg table, and out of every file.

A row delete alone only hides the rows: the old data files stay on disk, readable
through older snapshots, and files no snapshot ever referenced (a killed or refused
append's) hold them too. So, per table, after the subject's tombstones are written:

1. fence: an empty commit. A writer that read the tombstones before they existed
   committed before the fence (its rows are deleted next) or will fail its commit,
   whose snapshot is no longer the table's, and start over with the tombstones read
   (fruits_lake.sink); from here on no commit can bring the subject back;
2. delete the rows (copy-on-write), and seal: a second empty commit, whose snapshot
   no longer lists the manifest of deleted entries (it still carried the statistics
   of the removed files);
3. expire every snapshot but the current one and delete exactly the files only they
   referenced;
4. delete every file under the table's location that no snapshot references and
   that holds the subject's rows or a column bound of hers (the leftovers of killed
   and refused appends: Parquet data files, Avro manifests).
   Only a commit begun before the fence can own such a file, and it can no longer
   succeed: deleting it is safe while the stream runs.

Each step is retried with the lake's one retry policy (fruits_lake.commit_retry).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.avro.file import AvroFile
from pyiceberg.expressions import BooleanExpression
from pyiceberg.io import FileIO
from pyiceberg.table import Table
from pyiceberg.typedef import Record

from fruits_lake.catalog import ERASURE_FENCE_PROPERTY, without_subject_statistics
from fruits_lake.commit_retry import DEFAULT_POLICY, RetryPolicy, run_with_retry
from fruits_lake.orphans import (
    SnapshotWalk,
    list_table_files,
    referenced_files,
    table_filesystem,
)
from fruits_lake.schemas import arrow_schema
from fruits_lake.snapshots import expire_snapshot_ids

log = logging.getLogger(__name__)

# An unreadable data file no snapshot references may still be written by a live commit: it is
# only deleted once this old (a file of a killed append), and counted as left until then.
UNREADABLE_MIN_AGE = timedelta(minutes=30)
# Iceberg truncates string column bounds to this many characters.
BOUND_LENGTH = 16
FENCE = "fence"
SEAL = "seal"


@dataclass(frozen=True)
class TableErasure:
    """What erasing one subject from one table did (all counted for the audit record)."""

    rows_deleted: int
    files_removed: int
    orphan_files_removed: int
    # Orphan files too young to judge (unreadable, maybe a live commit's): the audit says so.
    orphan_files_left: int


@dataclass(frozen=True)
class SubjectMatch:
    """How the subject's rows are found: the filter for the table, the column and values for files."""

    row_filter: BooleanExpression
    column: str
    values: frozenset[str]


def erase_from_table(
    load: Callable[[], Table],
    match: SubjectMatch,
    request_id: str,
    now: Callable[[], datetime],
    policy: RetryPolicy = DEFAULT_POLICY,
) -> TableErasure:
    """Steps 1-4 on the table `load` returns (a fresh load per attempt)."""
    name = ".".join(load().name())

    def step(what: str, change: Callable[[Table], int]) -> int:
        return run_with_retry(lambda: change(load()), f"erasure {what} on {name}", policy)

    step("statistics rule", lambda table: _statistics_rule(table))
    step("fence", lambda table: mark(table, FENCE, request_id))
    rows = step("row delete", lambda table: delete_rows(table, match.row_filter))
    step("seal", lambda table: mark(table, SEAL, request_id))
    files = step("purge", purge_unreachable_files)
    removed, left = run_with_retry(
        lambda: purge_orphans_with(load(), match, now()), f"erasure orphan purge on {name}", policy
    )
    return TableErasure(rows, files, removed, left)


def _statistics_rule(table: Table) -> int:
    without_subject_statistics(table)
    return 0


def mark(table: Table, kind: str, request_id: str) -> int:
    """An empty commit (a snapshot with no files) that names the erasure in its summary."""
    table.append(
        pa.Table.from_pylist([], schema=arrow_schema(table.schema())),
        snapshot_properties={ERASURE_FENCE_PROPERTY: f"{kind}:{request_id}"},
    )
    return 0


def delete_rows(table: Table, row_filter: BooleanExpression) -> int:
    matching = table.scan(row_filter=row_filter, selected_fields=("image_id",)).to_arrow().num_rows
    if matching:
        table.delete(delete_filter=row_filter)
    return matching


def purge_unreachable_files(table: Table) -> int:
    """Expire every snapshot but the current one, then delete the files only they referenced.

    Only files reachable from an expired snapshot are candidates, so a data file a concurrent
    writer has written but not yet committed is never touched here. Returns the number deleted.
    """
    current = table.current_snapshot()
    if current is None:
        return 0
    expired = [s for s in table.metadata.snapshots if s.snapshot_id != current.snapshot_id]
    if not expired:
        return 0
    walk = SnapshotWalk(table.io)
    candidates = set().union(*(walk.files(s) for s in expired))
    expire_snapshot_ids(table, [s.snapshot_id for s in expired])
    table.refresh()
    kept = set().union(*(walk.files(s) for s in table.metadata.snapshots))
    doomed = sorted(candidates - kept)
    _delete_files(table.io, doomed)
    return len(doomed)


def purge_orphans_with(table: Table, match: SubjectMatch, now: datetime) -> tuple[int, int]:
    """Delete the unreferenced data files holding the subject's rows: (removed, left for now)."""
    table.refresh()
    referenced = referenced_files(table)
    filesystem, _ = table_filesystem(table)
    removed = left = 0
    for listed in list_table_files(table):
        if listed.path in referenced or not listed.path.endswith((".parquet", ".avro")):
            continue
        if listed.path.endswith(".avro"):
            holds = _manifest_holds_subject(filesystem, listed.path, match)
        else:
            holds = _holds_subject(filesystem, listed.path, match)
        if holds is None and listed.modified > now - UNREADABLE_MIN_AGE:
            left += 1
            continue
        if holds is not False:
            filesystem.delete_file(listed.path)
            removed += 1
    if left:
        log.warning("%s: %d unreferenced files too young to read are left for now", table.name(), left)
    return removed, left


def _holds_subject(filesystem, path: str, match: SubjectMatch) -> bool | None:
    """Whether the Parquet file has a row of the subject (None: unreadable, e.g. cut short)."""
    try:
        column = pq.read_table(path, columns=[match.column], filesystem=filesystem).column(match.column)
    except (OSError, pa.ArrowInvalid, KeyError):
        return None
    return bool(pc.any(pc.is_in(column, value_set=pa.array(sorted(match.values)))).as_py())


def _manifest_holds_subject(filesystem, path: str, match: SubjectMatch) -> bool | None:
    """Whether an Avro manifest (list) names the subject, e.g. in a column bound (None: unreadable).

    A manifest keeps each column's bounds cut to 16 characters, so the values' prefixes count too.
    """
    forms = {form for value in match.values for form in (value, value[:BOUND_LENGTH])}
    try:
        with filesystem.open_input_file(path) as stream:
            data = stream.read()
        with AvroFile(_BytesInput(data)) as avro:
            text = "".join(_flat_text(record) for record in avro)
    except (OSError, ValueError, EOFError):
        return None
    return any(form in text for form in forms)


def _flat_text(value) -> str:
    """Every value of a decoded Avro record as text (bytes as Latin-1, so a bound's characters show)."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, Mapping):
        return "".join(_flat_text(k) + _flat_text(v) for k, v in value.items())
    if isinstance(value, Record | list | tuple):
        return "".join(_flat_text(item) for item in value)
    return f"{value}|"


class _BytesInput:
    """The InputFile interface AvroFile reads through, over bytes already read."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def open(self, seekable: bool = True):
        return io.BytesIO(self._data)


def _delete_files(file_io: FileIO, paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            file_io.delete(path)
