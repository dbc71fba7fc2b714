"""The Spark side of monitoring: the listener that feeds the status log (streaming_job.monitoring.status_log).

`ProgressListener` turns each query event into a status record, a `latest.json`
update and, when configured, an EMF metric record; its `heartbeat`, called by
the driver's heartbeat thread (streaming_job.monitoring.heartbeat), does the same on a
timer. It keeps the last `HISTORY_RECORDS` progress records in memory (what the
demo and the bench read back), so a stream that runs for months holds a bounded history.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from dataclasses import asdict

from pyspark.sql.streaming import StreamingQueryListener

from fruits_core import contracts
from fruits_core.clock import utc_now
from streaming_job.config import StreamConfig
from streaming_job.monitoring import driver_process
from streaming_job.monitoring.backlog import ManifestBacklog
from streaming_job.monitoring.failure import Failure, failed_status, failure_emf, failure_of
from streaming_job.monitoring.status_log import (
    STATUS_RECORD_VERSION,
    BatchStatsBoard,
    EmfPublisher,
    StatusLog,
    Totals,
    heartbeat_record,
    progress_record,
)

log = logging.getLogger(__name__)

# Progress records kept in memory: a day of 60 s triggers is 1,440, a demo or bench run a few dozen.
HISTORY_RECORDS = 1000
# (time, backlog) of the last heartbeats, kept in latest.json: `fruits status` sees whether the backlog grows.
BACKLOG_SAMPLES = 10


class ProgressListener(StreamingQueryListener):
    """Writes the status log (and EMF metrics) from the query's events.

    Listener callbacks run on Spark's listener thread and `heartbeat` on the
    heartbeat thread; one lock orders their updates of latest.json. A failure
    to write a status object is logged and swallowed, it must never stop the stream.
    """

    def __init__(
        self,
        config: StreamConfig,
        board: BatchStatsBoard,
        backlog: ManifestBacklog | None = None,
        emf: EmfPublisher | None = None,
        status_log: StatusLog | None = None,
    ) -> None:
        self.config = config
        self.board = board
        self.backlog = backlog
        self.emf = emf
        self.status_log = status_log or StatusLog(config.status_uri)
        self.records: deque[dict] = deque(maxlen=HISTORY_RECORDS)
        self._latest: dict = {}
        self._totals = Totals()
        self._run_id: str | None = None
        self._empty_reported = 0
        self._backlog_samples: deque[list] = deque(maxlen=BACKLOG_SAMPLES)
        self._lock = threading.RLock()
        # Set at each query's end (a checkpoint rotation restarts the query, and clears it).
        self.terminated = threading.Event()
        # Set once the stream is over (runner.drain_listener): what the heartbeat beats until.
        self.stream_ended = threading.Event()

    def onQueryStarted(self, event) -> None:
        self._guarded("start", self._started, event)

    def onQueryProgress(self, event) -> None:
        self._guarded("progress", self._progress, event)

    def onQueryIdle(self, event) -> None:
        self._guarded("idle", self._idle, event)

    def onQueryTerminated(self, event) -> None:
        self._guarded("termination", self._terminated, event)
        self.terminated.set()

    def _started(self, event) -> None:
        previous = self.status_log.read_latest()
        now = contracts.iso_utc(utc_now())
        with self._lock:
            self._run_id = str(event.runId)
            self._totals = Totals.from_latest(previous)
            query_id = str(event.id)
            if (previous or {}).get("query_id") != query_id:
                # Another checkpoint (a checkpoint epoch, a reset) numbers its batches from 0 again.
                self._totals.last_batch_id = -1
            self._latest = {
                "record_version": STATUS_RECORD_VERSION,
                "query_id": query_id,
                "state": "running",
                "started_at": now,
                "updated_at": now,
                "last_progress": (previous or {}).get("last_progress"),
                # Why the previous run died (a restart by YARN clears `failure`, not this).
                "last_failure": (previous or {}).get("last_failure"),
                "totals": asdict(self._totals),
                "trigger_seconds": None if self.config.available_now else self.config.trigger_seconds,
                "max_files_per_trigger": self.config.max_files_per_trigger,
                "heartbeat_seconds": self.config.heartbeat_seconds,
                "hung_after_seconds": self.config.hung_after_seconds,
                "driver": driver_process.identity(),
                "stage": self.config.stage,
            }
            self.status_log.write_latest(self._latest)

    def heartbeat(self) -> None:
        """One heartbeat (called on a timer by the heartbeat thread): latest.json refreshed, EMF sent."""
        with self._lock:
            if self._latest.get("state") != "running":
                return
            now = utc_now()
            backlog = self.backlog.count().waiting if self.backlog else None
            record = heartbeat_record(now, self._run_id, self.board.in_flight(), backlog)
            if backlog is not None:
                self._backlog_samples.append([record["timestamp"], backlog])
            self._update_latest(heartbeat=record, backlog_samples=list(self._backlog_samples))
        if self.emf is not None:
            self.emf.publish(record)

    def _progress(self, event) -> None:
        progress = json.loads(event.progress.json)
        stats = self.board.take(int(progress["batchId"]))
        with self._lock:
            count = self.backlog.count() if self.backlog else None
            empty = count.empty_taken - self._empty_reported if count else 0
            self._empty_reported += empty
            record = progress_record(progress, stats, count.waiting if count else None, empty)
            self.records.append(record)
            self.status_log.write_progress(record)
            self._totals.add(record)
            self._update_latest(last_progress=record, totals=asdict(self._totals))
        backlog = record["backlog_manifests"]
        log.info(
            "batch %d: %d rows, %.1f rows/s, %d errors, backlog %s",
            record["batch_id"],
            record["input_rows"],
            record["rows_per_second"],
            record["error_rows"],
            backlog,
        )
        if self.emf is not None:
            self.emf.publish(record)

    def _idle(self, event) -> None:
        self._update_latest()

    def _terminated(self, event) -> None:
        failed = event.exception is not None
        if not failed:
            self._update_latest(state="stopped", error_class=None)
            return
        error_class = event.errorClassOnException
        self.record_failure(failure_of(event.exception, error_class), error_class)

    def record_failure(self, failure: Failure, error_class: str | None = None) -> None:
        """Why the stream died, before the driver exits: latest.json, and StreamFailed by Cause (EMF)."""
        now = utc_now()
        self._update_latest(**failed_status(failure, now, error_class))
        log.error("the stream failed: %s (%s)", failure.cause, failure.exception)
        if self.emf is not None:
            self.emf.send(failure_emf(failure, now, self.emf.namespace, self.emf.stage), self._run_id)

    def _update_latest(self, **changes) -> None:
        with self._lock:
            self._latest.update(changes, updated_at=contracts.iso_utc(utc_now()))
            self.status_log.write_latest(self._latest)

    def _guarded(self, what: str, handler, event) -> None:
        try:
            handler(event)
        except Exception:
            log.exception("status log: could not record the query %s event", what)
