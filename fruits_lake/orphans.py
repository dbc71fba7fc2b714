"""Orphan files: files under a table's location that no kept snapshot or metadata file references.

They are what expired snapshots, compactions and failed commits leave behind;
pyiceberg 0.10 has no action that removes them. Two rules keep this safe while the
stream writes: a file referenced by any kept snapshot (live entries of its manifests),
by the current or a logged metadata file, or by a statistics file is never deleted,
and a file younger than the minimum age is never deleted either, since an in-flight
commit writes its data and manifest files before the catalog points at them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pyarrow.fs import FileSelector, FileType
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.table import Table


class OrphanScanError(RuntimeError):
    """The listing does not match the table's metadata: nothing is deleted."""


@dataclass(frozen=True)
class ListedFile:
    path: str  # as PyArrowFileIO.parse_location gives it: "/abs/path" or "bucket/key"
    modified: datetime


def location_path(uri: str) -> str:
    """The filesystem path of a table file URI, the form listings use (no scheme)."""
    return PyArrowFileIO.parse_location(uri)[2]


def referenced_files(table: Table) -> set[str]:
    """Every file the table's metadata still references, as location paths."""
    metadata = table.metadata
    uris = {table.metadata_location}
    uris |= {entry.metadata_file for entry in metadata.metadata_log}
    uris |= {stats.statistics_path for stats in (*metadata.statistics, *metadata.partition_statistics)}
    manifests_read: set[str] = set()
    for snapshot in metadata.snapshots:
        uris.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            uris.add(manifest.manifest_path)
            if manifest.manifest_path in manifests_read:
                continue  # manifests are shared by successive snapshots: read each once
            manifests_read.add(manifest.manifest_path)
            uris |= {entry.data_file.file_path for entry in manifest.fetch_manifest_entry(table.io)}
    return {location_path(uri) for uri in uris}


def orphans(listed: Iterable[ListedFile], referenced: set[str], modified_before: datetime) -> list[str]:
    """Paths of the listed files that are neither referenced nor younger than the cutoff."""
    return sorted(
        file.path for file in listed if file.path not in referenced and file.modified < modified_before
    )


def list_table_files(table: Table) -> list[ListedFile]:
    """Every file under the table's location, through the filesystem pyiceberg writes with."""
    scheme, netloc, root = PyArrowFileIO.parse_location(table.location())
    filesystem = _filesystem(table, scheme, netloc)
    infos = filesystem.get_file_info(FileSelector(root.rstrip("/"), recursive=True, allow_not_found=True))
    return [ListedFile(info.path, info.mtime) for info in infos if info.type == FileType.File]


def remove_orphan_files(table: Table, modified_before: datetime) -> list[str]:
    """Delete the table's orphan files older than the cutoff; returns their paths."""
    listed = list_table_files(table)
    referenced = referenced_files(table)
    live = {location_path(task.file.file_path) for task in table.scan().plan_files()}
    missing = live - {file.path for file in listed}
    if missing:
        # A listing that misses live files is in another form (or incomplete): trusting it would
        # delete files the table needs.
        raise OrphanScanError(
            f"{len(missing)} live data files of {table.name()} are not in the listing of "
            f"{table.location()} (e.g. {sorted(missing)[0]}): no orphan file removed"
        )
    found = orphans(listed, referenced, modified_before)
    scheme, netloc, _ = PyArrowFileIO.parse_location(table.location())
    filesystem = _filesystem(table, scheme, netloc)
    for path in found:
        filesystem.delete_file(path)
    return found


def _filesystem(table: Table, scheme: str, netloc: str):
    if not isinstance(table.io, PyArrowFileIO):
        raise OrphanScanError(
            f"orphan removal needs pyiceberg's PyArrowFileIO, {table.name()} uses {table.io}"
        )
    return table.io.fs_by_scheme(scheme, netloc)
