"""The stream's status log and metrics, as plain Python: no Spark, so `fruits status` loads no pyspark.

Each progress event becomes one JSON record (`progress_record`), written as one
small object under `<lake>/status/progress/<date>/<batchId>-<epoch ms>.json`
(S3 objects cannot be appended to; the same layout locally), with
`<lake>/status/latest.json` kept up to date for `fruits status`; when a
CloudWatch log group is configured, the same figures go out as an
embedded-metric-format (EMF) record. The driver's heartbeat (`heartbeat_record`)
goes the same two ways, on a timer rather than per batch. Records hold counts, rates and durations
only: never an image id, a label or any personal data. The Spark listener that
feeds it is listener.ProgressListener.

Also here: the one definition of steady-state throughput, used by `fruits demo`
and `fruits bench` alike.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import asdict, dataclass
from datetime import datetime

from fruits_core import contracts
from fruits_core.lake_uris import join_uri
from streaming_job import uris

STATUS_RECORD_VERSION = contracts.STATUS_RECORD_VERSION
EMF_METRICS = contracts.STREAM_METRICS
EMF_DIMENSION = contracts.STREAM_METRIC_DIMENSION
PROGRESS_DIR = contracts.STATUS_PROGRESS_DIR
LATEST_NAME = contracts.STATUS_LATEST_NAME


@dataclass(frozen=True)
class BatchStats:
    """What foreachBatch measured on one micro-batch (the progress event cannot know it)."""

    manifest_rows: int
    feature_rows: int
    error_rows: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    model_builds: int
    # Feature rows left out because their image_id was already in the table (a reset checkpoint re-read).
    already_in_table: int = 0
    # Predictions below classifier.LOW_CONFIDENCE, and labelled rows predicted as another fruit
    # (drift and label noise; null while no classifier scores the batch).
    low_confidence_rows: int | None = None
    label_disagreements: int | None = None


@dataclass(frozen=True)
class BatchInFlight:
    batch_id: int
    started_at: datetime


class BatchStatsBoard:
    """Hands BatchStats from the foreachBatch function to the listener and the heartbeat (same driver).

    It also knows the batch being written (`begin` .. `record`): the heartbeat reports its age.
    """

    def __init__(self) -> None:
        self._stats: dict[int, BatchStats] = {}
        self._in_flight: BatchInFlight | None = None
        self._lock = threading.Lock()

    def begin(self, batch_id: int, started_at: datetime) -> None:
        with self._lock:
            self._in_flight = BatchInFlight(batch_id, started_at)

    def in_flight(self) -> BatchInFlight | None:
        with self._lock:
            return self._in_flight

    def record(self, batch_id: int, stats: BatchStats) -> None:
        with self._lock:
            self._stats[batch_id] = stats
            if self._in_flight is not None and self._in_flight.batch_id == batch_id:
                self._in_flight = None

    def take(self, batch_id: int) -> BatchStats | None:
        """The stats of `batch_id` (forgetting those of older batches)."""
        with self._lock:
            stats = self._stats.pop(batch_id, None)
            for older in [key for key in self._stats if key < batch_id]:
                del self._stats[older]
            return stats


def progress_record(
    progress: dict, stats: BatchStats | None, backlog_manifests: int | None, empty_manifests: int = 0
) -> dict:
    """The status record of one progress event (`progress` is StreamingQueryProgress.json parsed)."""
    durations = progress.get("durationMs") or {}
    duration_ms = int(durations.get("triggerExecution") or progress.get("batchDuration") or 0)
    # Spark's own row count includes every re-read of the source; foreachBatch counted each manifest once.
    rows = stats.manifest_rows if stats else int(progress.get("numInputRows") or 0)
    return {
        "record_version": STATUS_RECORD_VERSION,
        "event": "progress",
        "batch_id": int(progress["batchId"]),
        "timestamp": progress["timestamp"],
        "run_id": progress.get("runId"),
        "input_rows": rows,
        "rows_per_second": round(rows * 1000.0 / duration_ms, 3) if duration_ms else 0.0,
        "batch_duration_ms": duration_ms,
        "latency_p50_ms": stats.latency_p50_ms if stats else None,
        "latency_p95_ms": stats.latency_p95_ms if stats else None,
        "feature_rows": stats.feature_rows if stats else 0,
        "error_rows": stats.error_rows if stats else 0,
        "already_in_table": stats.already_in_table if stats else 0,
        "backlog_manifests": backlog_manifests,
        "model_builds": stats.model_builds if stats else 0,
        "empty_manifests": empty_manifests,
        "low_confidence_rows": stats.low_confidence_rows if stats else None,
        "label_disagreements": stats.label_disagreements if stats else None,
    }


def heartbeat_record(
    now: datetime, run_id: str | None, in_flight: BatchInFlight | None, backlog_manifests: int | None
) -> dict:
    """One heartbeat: liveness, the age of the batch being written (0 when idle), the backlog."""
    record = {
        "record_version": STATUS_RECORD_VERSION,
        "event": "heartbeat",
        "timestamp": contracts.iso_utc(now),
        "run_id": run_id,
        "heartbeat": 1,
        "batch_in_flight_seconds": (
            round((now - in_flight.started_at).total_seconds(), 3) if in_flight else 0.0
        ),
        "backlog_manifests": backlog_manifests,
    }
    if in_flight is not None:
        record["batch_id"] = in_flight.batch_id
        record["batch_started_at"] = contracts.iso_utc(in_flight.started_at)
    return record


def emf_record(record: dict, namespace: str, stage: str) -> dict:
    """CloudWatch embedded-metric-format document for a progress record.

    Metrics without a value (no latency in a batch without features) are left out:
    EMF has no null, and a zero would be a false reading.
    """
    metrics = [(name, field, unit) for name, field, unit in EMF_METRICS if record.get(field) is not None]
    document: dict = {
        "_aws": {
            "Timestamp": _epoch_ms(record["timestamp"]),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [[EMF_DIMENSION]],
                    "Metrics": [{"Name": name, "Unit": unit} for name, _, unit in metrics],
                }
            ],
        },
        EMF_DIMENSION: stage,
    }
    if record.get("batch_id") is not None:
        document["BatchId"] = record["batch_id"]
    for name, field, _ in metrics:
        document[name] = record[field]
    return document


def _epoch_ms(iso_timestamp: str) -> int:
    return int(contracts.parse_iso(iso_timestamp).timestamp() * 1000)


def progress_key(record: dict) -> str:
    """`progress/<date>/<batchId:010d>-<epoch ms>.json`: sorts by time within a day."""
    moment = contracts.parse_iso(record["timestamp"])
    return (
        f"{PROGRESS_DIR}/{contracts.partition_date(moment)}/"
        f"{record['batch_id']:010d}-{_epoch_ms(record['timestamp'])}.json"
    )


class StatusLog:
    """The stream's status objects under `<lake>/status/` (file:// or s3://)."""

    def __init__(self, status_uri: str) -> None:
        self.status_uri = status_uri.rstrip("/")

    @property
    def latest_uri(self) -> str:
        return join_uri(self.status_uri, LATEST_NAME)

    def write_progress(self, record: dict) -> str:
        uri = join_uri(self.status_uri, progress_key(record))
        uris.write_bytes(uri, _json_bytes(record))
        return uri

    def write_latest(self, latest: dict) -> None:
        uris.write_bytes(self.latest_uri, _json_bytes(latest))

    def read_latest(self) -> dict | None:
        try:
            return json.loads(uris.read_bytes(self.latest_uri))
        except FileNotFoundError:
            return None

    def recent_progress(self, day: str, limit: int = 20) -> list[dict]:
        """The newest progress records of one day (`YYYY-MM-DD`), oldest first."""
        day_uris = uris.list_uris(join_uri(self.status_uri, PROGRESS_DIR, day), suffix=".json")
        records = [json.loads(uris.read_bytes(uri)) for uri in day_uris[-limit:]]
        records.sort(key=lambda record: record["timestamp"])
        return records


def _json_bytes(document: dict) -> bytes:
    return (json.dumps(document, sort_keys=True) + "\n").encode("utf-8")


class EmfPublisher:
    """Sends EMF records to a CloudWatch Logs group, one log stream per query run."""

    def __init__(self, log_group: str, namespace: str, stage: str, client=None) -> None:
        self.log_group = log_group
        self.namespace = namespace
        self.stage = stage
        self._client = client
        self._streams: set[str] = set()

    def publish(self, record: dict) -> dict:
        return self.send(emf_record(record, self.namespace, self.stage), record.get("run_id"))

    def send(self, document: dict, run_id: str | None) -> dict:
        """Put one EMF document in the run's log stream."""
        stream = f"{self.stage}/stream/{run_id or 'unknown-run'}"
        client = self._logs_client()
        if stream not in self._streams:
            with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
                client.create_log_stream(logGroupName=self.log_group, logStreamName=stream)
            self._streams.add(stream)
        client.put_log_events(
            logGroupName=self.log_group,
            logStreamName=stream,
            logEvents=[{"timestamp": document["_aws"]["Timestamp"], "message": json.dumps(document)}],
        )
        return document

    def _logs_client(self):
        if self._client is None:
            import boto3

            self._client = boto3.client("logs")
        return self._client


@dataclass
class Totals:
    """Running totals over the stream's life, carried across restarts through latest.json."""

    batches: int = 0
    input_rows: int = 0
    feature_rows: int = 0
    error_rows: int = 0
    model_builds: int = 0
    empty_manifests: int = 0
    last_batch_id: int = -1

    def add(self, record: dict) -> None:
        if record["batch_id"] <= self.last_batch_id:
            return
        self.batches += 1
        self.input_rows += record["input_rows"]
        self.feature_rows += record["feature_rows"]
        self.error_rows += record["error_rows"]
        self.model_builds += record["model_builds"]
        self.empty_manifests += record.get("empty_manifests", 0)
        self.last_batch_id = record["batch_id"]

    @classmethod
    def from_latest(cls, latest: dict | None) -> Totals:
        saved = (latest or {}).get("totals") or {}
        return cls(**{field: int(saved.get(field, default)) for field, default in asdict(cls()).items()})


# Micro-batches left out of the steady state: the first pays for Python worker start-up and the model build.
WARMUP_BATCHES = 1


def epoch_seconds(iso_timestamp: str) -> float:
    return contracts.parse_iso(iso_timestamp).timestamp()


def batch_end(record: dict) -> float:
    """When a micro-batch ended (epoch s): its trigger time plus its duration."""
    return epoch_seconds(record["timestamp"]) + record["batch_duration_ms"] / 1000.0


def busy_batches(records: list[dict]) -> list[dict]:
    """The micro-batches that read manifests, in batch order (an idle trigger's record has no rows)."""
    return sorted(
        (record for record in records if record["input_rows"] > 0), key=lambda record: record["batch_id"]
    )


def steady_state(records: list[dict], warmup: int = WARMUP_BATCHES) -> dict:
    """Images/s of the micro-batches after the first `warmup` ones, over the time they span.

    The span runs from the end of the last warm-up batch to the end of the last
    batch, so the gaps between batches (planning, listener, trigger wait) count
    against the stream: this is the throughput an operator would see, not the sum
    of the batches' busy times. With too few batches for a warm-up, the whole run
    is used (its figure then includes start-up and is marked as such).
    """
    ordered = busy_batches(records)
    if not ordered:
        return {"images_per_s": None, "images": 0, "batches": 0, "includes_warmup": False}
    if len(ordered) <= warmup:
        rows = sum(record["input_rows"] for record in ordered)
        span = sum(record["batch_duration_ms"] for record in ordered) / 1000.0
        return {
            "images_per_s": _rate(rows, span),
            "images": rows,
            "batches": len(ordered),
            "includes_warmup": True,
        }
    steady = ordered[warmup:]
    rows = sum(record["input_rows"] for record in steady)
    span = (
        batch_end(steady[-1]) - batch_end(ordered[warmup - 1])
        if warmup
        else batch_end(steady[-1]) - epoch_seconds(steady[0]["timestamp"])
    )
    return {
        "images_per_s": _rate(rows, span),
        "images": rows,
        "batches": len(steady),
        "includes_warmup": False,
    }


def _rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 2) if seconds > 0 else None
