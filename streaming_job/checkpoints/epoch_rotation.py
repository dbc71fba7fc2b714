"""Checkpoint epochs on the lake's file system, and the query swap at a rotation (Spark glue).

The decisions (which epoch runs, when to rotate, which to retire) are
`checkpoint_epochs.py`; this module lists, dates and deletes epoch directories
through Hadoop's FileSystem (file:// and s3:// alike), and swaps the running
query for one on the next epoch between two micro-batches.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pyspark.sql import SparkSession

from fruits_core.lake_uris import join_uri
from streaming_job.checkpoints.checkpoint_epochs import (
    MIN_BATCHES_PER_EPOCH,
    EpochLayout,
    epoch_uri,
    layout_of,
    next_layout,
    rotation_due,
)
from streaming_job.checkpoints.source_cleanup import last_committed_batch

log = logging.getLogger(__name__)

# Spark's log of the committed micro-batches of a checkpoint: one file per batch id.
COMMITS_DIR = "commits"
# Written by Spark when a query first starts on a checkpoint: its modification time dates the epoch.
SPARK_METADATA_FILE = "metadata"
# How long a rotation waits for the listener to see the old query's end before starting the next one.
TERMINATION_EVENT_SECONDS = 30.0


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class EpochCheckpoints:
    """The epoch directories under the checkpoint root, and when the current one started.

    An epoch's start is the modification time of the `metadata` file Spark writes
    when a query first runs on it, so a restart keeps the epoch's age; an epoch
    not started yet counts from now.
    """

    def __init__(
        self,
        spark: SparkSession,
        root_uri: str,
        epoch_hours: float,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.root_uri = root_uri
        self.epoch_hours = epoch_hours
        self.clock = clock
        self._jvm = spark._jvm
        self._conf = spark._jsc.hadoopConfiguration()
        self.layout = EpochLayout(current=0, retire=())
        self.started_ms = 0

    def open(self) -> str:
        """Find the epoch to resume, retire what a killed rotation left, return its checkpoint URI."""
        self.layout = layout_of(self.root_uri, self._child_names(self.root_uri))
        self.retire()
        self.started_ms = self._modified_ms(join_uri(self.current_uri(), SPARK_METADATA_FILE)) or self.clock()
        log.info("checkpoint epoch %d (%s)", self.layout.current, self.current_uri())
        return self.current_uri()

    def current_uri(self) -> str:
        return epoch_uri(self.root_uri, self.layout.current)

    def due(self) -> bool:
        """Whether the current epoch is old enough and has committed enough batches to rotate.

        Batches are counted in the epoch's commit log, not from the query's last progress: an
        idle trigger reports the id of the batch it did not run, so an idle epoch that had
        re-read one batch looked like two, and rotated (re-reading that batch) every epoch.
        """
        now = self.clock()
        if not rotation_due(self.started_ms, now, self.epoch_hours, MIN_BATCHES_PER_EPOCH):
            return False  # too young: no listing
        return rotation_due(self.started_ms, now, self.epoch_hours, self.committed_batches())

    def committed_batches(self) -> int:
        """Micro-batches the current epoch's checkpoint logged as committed (ids go on across restarts)."""
        last = last_committed_batch(self._child_names(join_uri(self.current_uri(), COMMITS_DIR)))
        return 0 if last is None else last + 1

    def advance(self) -> str:
        """Move on to the next epoch (its directory is created by the query); return its checkpoint URI."""
        self.layout = next_layout(self.layout)
        self.started_ms = self.clock()
        return self.current_uri()

    def retire(self) -> None:
        """Delete the epochs before the current one (idempotent: a killed delete is finished next time)."""
        for epoch in self.layout.retire:
            path = self._path(epoch_uri(self.root_uri, epoch))
            path.getFileSystem(self._conf).delete(path, True)
            log.info("checkpoint epoch %d retired (deleted)", epoch)
        self.layout = EpochLayout(current=self.layout.current, retire=())

    def _child_names(self, uri: str) -> list[str]:
        path = self._path(uri)
        fs = path.getFileSystem(self._conf)
        if not fs.exists(path):
            return []
        return [status.getPath().getName() for status in fs.listStatus(path)]

    def _modified_ms(self, uri: str) -> int | None:
        path = self._path(uri)
        fs = path.getFileSystem(self._conf)
        return int(fs.getFileStatus(path).getModificationTime()) if fs.exists(path) else None

    def _path(self, uri: str):
        return self._jvm.org.apache.hadoop.fs.Path(uri)


class EpochRotation:
    """Runs the query on the current epoch and swaps it for one on the next epoch when it is due.

    The listener stays registered across queries: the rotation waits for the old
    query's termination event (so its "stopped" record is written before the new
    query's "running" one), then re-arms `query_ended` for the new query.

    Before the next epoch starts, `clean_last_batch` archives (or deletes) the manifests of
    the stopped query's last committed batch, as Spark would only when planning a next
    batch: otherwise the new epoch would read and featurize them again, at every rotation
    of an idle stream. A kill between the clean-up and the next start is harmless: the
    restart resumes the old epoch, whose cleaner skips files already moved.
    """

    def __init__(
        self,
        epochs: EpochCheckpoints,
        start_query: Callable[[str], object],
        stop_query: Callable[[object], None],
        query_ended: threading.Event,
        clean_last_batch: Callable[[str], object],
    ) -> None:
        self.epochs = epochs
        self.start_query = start_query
        self.stop_query = stop_query
        self.query_ended = query_ended
        self.clean_last_batch = clean_last_batch

    def start(self):
        """Start the query on the current epoch (found by `epochs.open()`, which the backlog needs first)."""
        return self.start_query(self.epochs.current_uri())

    def rotate_if_due(self, query):
        """The query to wait on next: `query` itself, or its successor on the next epoch."""
        if not query.isActive or not self.epochs.due():
            return query
        retiring = self.epochs.layout.current
        self.stop_query(query)
        if query.exception() is not None:
            return query
        if not self.query_ended.wait(TERMINATION_EVENT_SECONDS):
            log.warning("the termination event of epoch %d's query did not arrive", retiring)
        self.query_ended.clear()
        self.clean_last_batch(self.epochs.current_uri())
        successor = self.start_query(self.epochs.advance())
        self.epochs.retire()
        log.info("checkpoint epoch %d started, epoch %d retired", self.epochs.layout.current, retiring)
        return successor
