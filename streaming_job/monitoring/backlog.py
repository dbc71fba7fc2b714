"""The exact backlog: manifests under `manifests/` that the file source has not taken yet.

Spark's file source writes every file it takes into a batch to its own log,
`<checkpoint>/sources/0/<n>` (one JSON line per file; every 10th file is a
`.compact` file holding all entries up to it) before the batch runs. So the
manifests waiting are exactly those listed under `manifests/` and absent from
that log; no modification time is compared (a late file with an old mtime
counts too). The log is read incrementally: each log file once, and a compact
file only for the entries newer than what was already read. The set of taken
paths is trimmed to the paths still listed, so with `--clean-source archive` or
`delete` it holds about one batch. Each count costs one listing of
`manifests/` (one LIST per 1,000 keys) plus one of the log's directory.

Spark's file scan skips 0-byte files, so an empty manifest yields no row at
all: the counter also counts the empty manifests the source takes while this
driver runs (sizes come with the listing), which the status log and the metrics
report. Files the log held when the counter was made (earlier runs) are not
counted again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from fruits_core.lake_uris import join_uri
from streaming_job import uris

SOURCE_LOG_DIR = "sources/0"
COMPACT_SUFFIX = ".compact"
MANIFEST_SUFFIX = ".json"


def path_key(uri: str) -> str:
    """A file's identity whatever the spelling: `file:/x`, `file:///x` and `dt%3D` all name the same file."""
    parsed = urlparse(uri)
    return unquote(parsed.netloc + parsed.path)


def log_file_id(uri: str) -> int | None:
    """The batch number a source log file is named after (`12`, `19.compact`); None for anything else."""
    name = uri.rsplit("/", 1)[-1].removesuffix(COMPACT_SUFFIX)
    return int(name) if name.isdigit() else None


def log_entries(text: str) -> list[dict]:
    """The entries of one source log file: a version line (`v1`), then one JSON object per line."""
    lines = text.splitlines()
    return [json.loads(line) for line in lines[1:] if line.strip()]


class SourceLog:
    """The file source's log of the files it took, read incrementally."""

    def __init__(self, log_uri: str) -> None:
        self.log_uri = log_uri
        self.read_through = -1

    def new_paths(self) -> set[str]:
        """Keys (path_key) of the files taken since the previous call (all of them on the first call)."""
        files = {log_file_id(uri): uri for uri in uris.list_uris(self.log_uri)}
        files.pop(None, None)
        unread = sorted(file_id for file_id in files if file_id > self.read_through)
        compacts = [file_id for file_id in unread if files[file_id].endswith(COMPACT_SUFFIX)]
        if self.read_through < 0 and compacts:
            # A compact file holds every entry up to it (older files may be deleted): start there.
            unread = [file_id for file_id in unread if file_id >= compacts[-1]]
        taken: set[str] = set()
        for file_id in unread:
            entries = log_entries(uris.read_bytes(files[file_id]).decode("utf-8"))
            taken.update(
                path_key(entry["path"]) for entry in entries if int(entry["batchId"]) > self.read_through
            )
            self.read_through = file_id
        return taken


@dataclass(frozen=True)
class BacklogCount:
    waiting: int
    # Running total of the 0-byte manifests the source took since this counter was made.
    empty_taken: int


class ManifestBacklog:
    """Counts the waiting manifests (and the empty ones taken) of one stream; safe to call from any thread."""

    def __init__(self, manifests_uri: str, checkpoint_uri: Callable[[], str]) -> None:
        """`checkpoint_uri` gives the running query's checkpoint: a checkpoint rotation moves it."""
        self.manifests_uri = manifests_uri
        self._checkpoint_uri = checkpoint_uri
        self._source_log_root = checkpoint_uri()
        self.source_log = SourceLog(join_uri(self._source_log_root, SOURCE_LOG_DIR))
        # What earlier runs took: waiting no more, and their empty manifests were theirs to count.
        self._taken: set[str] = self.source_log.new_paths()
        self._empty_taken = 0
        self._lock = threading.Lock()

    def count(self) -> BacklogCount:
        with self._lock:
            listed = uris.list_sizes(self.manifests_uri, MANIFEST_SUFFIX)
            sizes = {path_key(uri): size for uri, size in listed.items()}
            if self._checkpoint_uri() != self._source_log_root:
                # A new epoch's log starts empty; what the old one took stays taken (still trimmed below).
                self._source_log_root = self._checkpoint_uri()
                self.source_log = SourceLog(join_uri(self._source_log_root, SOURCE_LOG_DIR))
            newly_taken = self.source_log.new_paths() - self._taken
            self._empty_taken += sum(1 for key in newly_taken if sizes.get(key) == 0)
            self._taken = (self._taken | newly_taken) & sizes.keys()
            return BacklogCount(waiting=len(sizes.keys() - self._taken), empty_taken=self._empty_taken)
