"""One data subject's rows in the lake's Iceberg tables: find them (export), delete them for good (erase).

Which tables and rows are the subject's is decided here; how they leave a table (a fence
against commits in flight, the row delete, the purge of every file that held them) is
fruits_lake.erasure's, the one room that commits to tables.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError
from pyiceberg.expressions import In

from fruits_core import contracts
from fruits_core.clock import utc_now
from fruits_lake.catalog import ERRORS_TABLE, NAMESPACE
from fruits_lake.commit_retry import DEFAULT_POLICY, RetryPolicy
from fruits_lake.erasure import SubjectMatch, erase_from_table
from fruits_privacy.subject_plan import ImageRef

# The feature vector is left out of an export: it is a model's projection of the photo (the
# photo itself is exported by key), meaningless to a person and thousands of numbers long.
EXPORT_EXCLUDED_COLUMNS = {"features"}
SUBJECT_COLUMN = "subject_id"
FEATURE_ROWS = "feature_rows"
ERROR_ROWS = "error_rows"
TABLE_FILES_REMOVED = "table_files_removed"
# Unreferenced files too young to read (maybe a live commit's): an erasure run later removes them.
ORPHAN_FILES_LEFT = "table_orphan_files_left"


class IcebergSubjectTables:
    """Feature tables (rows by pseudonym) and the errors table (rows by the subject's image ids)."""

    def __init__(
        self, catalog: Catalog, policy: RetryPolicy = DEFAULT_POLICY, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.catalog = catalog
        self._policy = policy
        self._clock = clock

    def rows(self, pseudonyms: set[str], images: set[ImageRef]) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {FEATURE_ROWS: [], ERROR_ROWS: []}
        for kind, identifier, row_filter in self._filters(pseudonyms, images):
            table = self.catalog.load_table(identifier)
            columns = [f.name for f in table.schema().fields if f.name not in EXPORT_EXCLUDED_COLUMNS]
            arrow = table.scan(row_filter=row_filter, selected_fields=tuple(columns)).to_arrow()
            found[kind] += [_json_row(row) for row in arrow.to_pylist()]
        return found

    def erase(self, pseudonyms: set[str], images: set[ImageRef]) -> dict[str, int]:
        """Every table that can hold the subject, through fruits_lake's erasure (fence, delete, purge)."""
        counts = dict.fromkeys((FEATURE_ROWS, ERROR_ROWS, TABLE_FILES_REMOVED, ORPHAN_FILES_LEFT), 0)
        request_id = uuid.uuid4().hex
        for kind, identifier, row_filter in self._filters(pseudonyms, images):
            column, values = (
                (SUBJECT_COLUMN, pseudonyms) if kind == FEATURE_ROWS else ("image_id", _image_ids(images))
            )
            done = erase_from_table(
                lambda identifier=identifier: self.catalog.load_table(identifier),
                SubjectMatch(row_filter, column, frozenset(values)),
                request_id,
                self._clock,
                self._policy,
            )
            counts[kind] += done.rows_deleted
            counts[TABLE_FILES_REMOVED] += done.files_removed + done.orphan_files_removed
            counts[ORPHAN_FILES_LEFT] += done.orphan_files_left
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
        image_ids = sorted(_image_ids(images))
        for name in names:
            # Glue lists (stage database, table): address every table through the `fruits` namespace.
            identifier = f"{NAMESPACE}.{name[-1]}"
            if identifier == ERRORS_TABLE:
                if image_ids:
                    yield ERROR_ROWS, identifier, In("image_id", image_ids)
            elif pseudonyms and SUBJECT_COLUMN in self.catalog.load_table(identifier).schema().column_names:
                yield FEATURE_ROWS, identifier, In(SUBJECT_COLUMN, sorted(pseudonyms))


def _image_ids(images: set[ImageRef]) -> set[str]:
    return {ref.image_id for ref in images}


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    """A table row as JSON values (timestamps as ISO UTC); a features row gets the `dt` of its clean image."""
    values = {
        name: contracts.iso_utc(value) if hasattr(value, "astimezone") else value
        for name, value in row.items()
    }
    if row.get("uploaded_at") is not None:
        values["dt"] = contracts.partition_date(row["uploaded_at"])
    return values
