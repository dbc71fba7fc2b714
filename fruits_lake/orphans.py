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
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.manifest import ManifestFile
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot


class OrphanScanError(RuntimeError):
    """The listing does not match the table's metadata: nothing is deleted."""


@dataclass(frozen=True)
class ListedFile:
    path: str  # as PyArrowFileIO.parse_location gives it: "/abs/path" or "bucket/key"
    modified: datetime


def location_path(uri: str) -> str:
    """The filesystem path of a table file URI, the form listings use (no scheme)."""
    return PyArrowFileIO.parse_location(uri)[2]


class SnapshotWalk:
    """The files each snapshot reaches, reading each manifest once for the whole walk.

    Successive snapshots share most of their manifests, and a manifest never changes once
    written, so its live data files are cached by path (the one walk of the lake's snapshots:
    orphan removal and the erasure's purge both use it).
    """

    def __init__(self, io: FileIO) -> None:
        self.io = io
        self._data_files: dict[str, frozenset[str]] = {}

    def files(self, snapshot: Snapshot) -> set[str]:
        """The snapshot's manifest list, its manifests and their live data files (as URIs)."""
        found = {snapshot.manifest_list}
        for manifest in snapshot.manifests(self.io):
            found.add(manifest.manifest_path)
            found |= self.data_files(manifest)
        return found

    def data_files(self, manifest: ManifestFile) -> frozenset[str]:
        path = manifest.manifest_path
        if path not in self._data_files:
            self._data_files[path] = frozenset(
                entry.data_file.file_path for entry in manifest.fetch_manifest_entry(self.io)
            )
        return self._data_files[path]


def referenced_files(table: Table, walk: SnapshotWalk | None = None) -> set[str]:
    """Every file the table's metadata still references, as location paths."""
    walk = walk or SnapshotWalk(table.io)
    metadata = table.metadata
    uris = {table.metadata_location}
    uris |= {entry.metadata_file for entry in metadata.metadata_log}
    uris |= {stats.statistics_path for stats in (*metadata.statistics, *metadata.partition_statistics)}
    for snapshot in metadata.snapshots:
        uris |= walk.files(snapshot)
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


def table_filesystem(table: Table):
    """The filesystem of the table's location, and that location as a listing path."""
    scheme, netloc, root = PyArrowFileIO.parse_location(table.location())
    return _filesystem(table, scheme, netloc), root


def _filesystem(table: Table, scheme: str, netloc: str):
    if not isinstance(table.io, PyArrowFileIO):
        raise OrphanScanError(
            f"orphan removal needs pyiceberg's PyArrowFileIO, {table.name()} uses {table.io}"
        )
    return table.io.fs_by_scheme(scheme, netloc)
