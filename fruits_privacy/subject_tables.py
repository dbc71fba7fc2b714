"""One data subject's rows in the lake's Iceberg tables: find them (export), delete them for good (erase).

A row delete alone only hides the rows: the old data files stay on disk, readable through
older snapshots. So an erasure deletes the rows (a copy-on-write commit), expires every
snapshot older than its own, then deletes exactly the files only those snapshots referenced:
never a file the table (or a writer's commit still in flight) may need. Commits are
optimistic: a concurrent stream commit makes ours fail, and we reload and retry.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchNamespaceError
from pyiceberg.expressions import BooleanExpression, In
from pyiceberg.io import FileIO
from pyiceberg.table import Table

from fruits_core import contracts
from fruits_lake.catalog import ERRORS_TABLE, NAMESPACE
from fruits_lake.snapshots import expire_snapshot_ids
from fruits_privacy.subject_plan import ImageRef

# The feature vector is left out of an export: it is a model's projection of the photo (the
# photo itself is exported by key), meaningless to a person and thousands of numbers long.
EXPORT_EXCLUDED_COLUMNS = {"features"}
SUBJECT_COLUMN = "subject_id"
COMMIT_ATTEMPTS = 8
FEATURE_ROWS = "feature_rows"
ERROR_ROWS = "error_rows"
TABLE_FILES_REMOVED = "table_files_removed"


class IcebergSubjectTables:
    """Feature tables (rows by pseudonym) and the errors table (rows by the subject's image ids)."""

    def __init__(self, catalog: Catalog, sleep: Callable[[float], None] = time.sleep) -> None:
        self.catalog = catalog
        self._sleep = sleep

    def rows(self, pseudonyms: set[str], images: set[ImageRef]) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {FEATURE_ROWS: [], ERROR_ROWS: []}
        for kind, identifier, row_filter in self._filters(pseudonyms, images):
            table = self.catalog.load_table(identifier)
            columns = [f.name for f in table.schema().fields if f.name not in EXPORT_EXCLUDED_COLUMNS]
            arrow = table.scan(row_filter=row_filter, selected_fields=tuple(columns)).to_arrow()
            found[kind] += [_json_row(row) for row in arrow.to_pylist()]
        return found

    def erase(self, pseudonyms: set[str], images: set[ImageRef]) -> dict[str, int]:
        counts = {FEATURE_ROWS: 0, ERROR_ROWS: 0, TABLE_FILES_REMOVED: 0}
        for kind, identifier, row_filter in self._filters(pseudonyms, images):
            counts[kind] += self._committed(identifier, lambda table, f=row_filter: _delete_rows(table, f))
            counts[TABLE_FILES_REMOVED] += self._committed(identifier, purge_unreachable_files)
        return counts

    def _filters(self, pseudonyms: set[str], images: set[ImageRef]):
        """(kind, table, filter) for every table of the namespace that can hold the subject.

        Feature tables are all those with a subject_id column: `--new-model-table` keeps the
        previous model's rows as fruits.features_<pca version>, and they are the subject's too.
        """
        try:
            names = sorted(self.catalog.list_tables(NAMESPACE))
        except NoSuchNamespaceError:
            return
        image_ids = sorted({ref.image_id for ref in images})
        for name in names:
            # Glue lists (stage database, table): address every table through the `fruits` namespace.
            identifier = f"{NAMESPACE}.{name[-1]}"
            if identifier == ERRORS_TABLE:
                if image_ids:
                    yield ERROR_ROWS, identifier, In("image_id", image_ids)
            elif pseudonyms and SUBJECT_COLUMN in self.catalog.load_table(identifier).schema().column_names:
                yield FEATURE_ROWS, identifier, In(SUBJECT_COLUMN, sorted(pseudonyms))

    def _committed(self, identifier: str, change: Callable[[Table], int]) -> int:
        """Run `change` on a freshly loaded table, again after each lost commit race."""
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                return change(self.catalog.load_table(identifier))
            except CommitFailedException:
                if attempt == COMMIT_ATTEMPTS - 1:
                    raise
                self._sleep(min(0.1 * 2**attempt, 5.0))
        raise AssertionError("unreachable")


def _delete_rows(table: Table, row_filter: BooleanExpression) -> int:
    matching = table.scan(row_filter=row_filter, selected_fields=("image_id",)).to_arrow().num_rows
    if matching:
        table.delete(delete_filter=row_filter)
    return matching


def purge_unreachable_files(table: Table) -> int:
    """Expire every snapshot but the current one, then delete the files only they referenced.

    Only files reachable from an expired snapshot are candidates, so a data file a concurrent
    writer has written but not yet committed is never touched (a blind orphan sweep would
    corrupt its commit). Returns the number of files deleted.
    """
    current = table.current_snapshot()
    if current is None:
        return 0
    expired = [s for s in table.metadata.snapshots if s.snapshot_id != current.snapshot_id]
    if not expired:
        return 0
    candidates = set().union(*(_reachable_files(table, s) for s in expired))
    expire_snapshot_ids(table, [s.snapshot_id for s in expired])
    table.refresh()
    kept = set().union(*(_reachable_files(table, s) for s in table.metadata.snapshots))
    doomed = sorted(candidates - kept)
    _delete_files(table.io, doomed)
    return len(doomed)


def _reachable_files(table: Table, snapshot) -> set[str]:
    """A snapshot's manifest list, its manifests and its live data files (not those it removed)."""
    files = {snapshot.manifest_list}
    for manifest in snapshot.manifests(table.io):
        files.add(manifest.manifest_path)
        files |= {
            entry.data_file.file_path
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
        }
    return files


def _delete_files(io: FileIO, paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            io.delete(path)


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    """A table row as JSON values (timestamps as ISO UTC); a features row gets the `dt` of its clean image."""
    values = {
        name: contracts.iso_utc(value) if hasattr(value, "astimezone") else value
        for name, value in row.items()
    }
    if row.get("uploaded_at") is not None:
        values["dt"] = contracts.partition_date(row["uploaded_at"])
    return values
