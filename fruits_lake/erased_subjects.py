"""Which subjects were erased, and when: the lake's `tombstones/<pseudonym>.json`, listed for the sink.

The erasure writes a subject's tombstone before it touches any table (fruits_privacy.subjects),
so a writer that lists the tombstones after refreshing a table and before committing to it
knows every erasure its commit could undo. One listing per commit attempt, not one read per
subject: the time a tombstone was written is its listing's modification time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from pyarrow.fs import FileSelector, FileSystem, FileType
from pyiceberg.io.pyarrow import PyArrowFileIO

from fruits_core import contracts
from fruits_core.lake_uris import join_uri

TOMBSTONE_NAME = re.compile(r"([0-9a-f]{64})\.json")


def tombstone_listing(lake_uri: str, io: PyArrowFileIO) -> Callable[[], Mapping[str, datetime]]:
    """A reader of the lake's tombstones through `io`'s filesystem (the one the tables are written with)."""
    scheme, netloc, root = PyArrowFileIO.parse_location(join_uri(lake_uri, contracts.TOMBSTONES_PREFIX))

    def erased() -> Mapping[str, datetime]:
        return erased_subjects(io.fs_by_scheme(scheme, netloc), root)

    return erased


def erased_subjects(filesystem: FileSystem, folder: str) -> dict[str, datetime]:
    """pseudonym -> when its tombstone was written, for every tombstone in `folder`."""
    infos = filesystem.get_file_info(FileSelector(folder.rstrip("/"), allow_not_found=True))
    found = {}
    for info in infos:
        match = TOMBSTONE_NAME.fullmatch(info.base_name)
        if info.type == FileType.File and match:
            found[match.group(1)] = info.mtime.astimezone(UTC)
    return found
