"""Starting the featurizing query and stopping it cleanly.

`start_stream` loads the model artifacts on the driver, broadcasts them, wires
the listener, starts the query and the driver's heartbeat thread; `await_stream` waits for it and stops it
between two micro-batches when SIGTERM arrives or the stop marker
(`<lake>/control/stop-stream`, written by `fruits deploy stop`) appears.
A batch cut short anyway (a stop that times out, a kill) is re-run on the next
start; the sink finds what that batch already committed and skips it (fruits_lake/sink.py):
still exactly once.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass

from pyspark.errors import StreamingQueryException
from pyspark.sql import SparkSession

from fruits_core import contracts
from fruits_core.clock import utc_now
from fruits_core.errors import ConfigError
from fruits_lake.catalog import LAKE_PROPERTY, open_catalog
from fruits_lake.erased_subjects import tombstone_listing
from fruits_lake.sink import TableSink
from fruits_lake.table_versions import TableModel, features_table_for
from streaming_job import uris
from streaming_job.checkpoints.epoch_rotation import EpochCheckpoints, EpochRotation
from streaming_job.checkpoints.source_cleanup import clean_last_batch
from streaming_job.config import StreamConfig
from streaming_job.monitoring.backlog import ManifestBacklog
from streaming_job.monitoring.failure import failed_status, failure_emf, failure_of
from streaming_job.monitoring.heartbeat import Heartbeat
from streaming_job.monitoring.listener import ProgressListener
from streaming_job.monitoring.status_log import BatchStatsBoard, EmfPublisher, StatusLog
from streaming_job.query.stream import QUERY_NAME, MicroBatchWriter, WorkerContext, read_manifests
from streaming_job.scoring.classifier_swap import ClassifierSwap

log = logging.getLogger(__name__)

STOP_POLL_SECONDS = 2.0
# How long a stop waits for the running micro-batch to finish before interrupting it.
STOP_GRACE_SECONDS = 600.0
LISTENER_DRAIN_SECONDS = 30.0


@dataclass
class RunningStream:
    query: object
    listener: ProgressListener
    model_version: str
    pca_version: str
    k: int
    explained_variance: list[float]
    rotation: EpochRotation
    # What chose each micro-batch's classifier (None with --no-predictions).
    classifier_swap: ClassifierSwap | None = None


class HadoopFiles:
    """The few file operations the driver needs on the lake, through Hadoop (file:// and s3://)."""

    def __init__(self, spark: SparkSession) -> None:
        self._jvm = spark._jvm
        self._conf = spark._jsc.hadoopConfiguration()

    def mkdirs(self, uri: str) -> None:
        path = self._path(uri)
        path.getFileSystem(self._conf).mkdirs(path)

    def delete(self, uri: str) -> bool:
        path = self._path(uri)
        return bool(path.getFileSystem(self._conf).delete(path, False))

    def _path(self, uri: str):
        return self._jvm.org.apache.hadoop.fs.Path(uri)


def start_stream(
    spark: SparkSession, config: StreamConfig, classifier_swap_type: type[ClassifierSwap] = ClassifierSwap
) -> RunningStream:
    """Load and broadcast the model artifacts, open the tables, register the listener, start the query.

    `classifier_swap_type` picks each micro-batch's classifier; a subclass lets a test or a
    benchmark act at the batch boundary (publish during a batch, score every other batch).
    Raises ConfigError when the features table holds another model's vectors (table_versions).
    """
    from streaming_job.featurizer.model import load_featurizer_spec
    from streaming_job.featurizer.pca import load_pca

    spec = load_featurizer_spec(config.featurizer)
    projection = load_pca(spark, config.pca, spec.model_version)
    catalog = open_catalog(config.lake)
    features, errors = features_table_for(
        catalog,
        TableModel(spec.model_version, projection.pca_version, projection.k),
        config.new_model_table,
    )
    sink = TableSink(
        features,
        errors,
        projection.pca_version,
        erased_subjects=tombstone_listing(catalog.properties[LAKE_PROPERTY], features.io),
    )
    sc = spark.sparkContext
    context = WorkerContext(
        spec_broadcast=sc.broadcast(spec),
        projection_broadcast=sc.broadcast(projection),
        inference_batch_size=config.inference_batch_size,
        cores_per_task=int(spark.conf.get("spark.task.cpus", "1")),
        model_builds=sc.accumulator(0),
        image_read_timeout_seconds=config.image_read_timeout_seconds,
    )
    classifier_swap = (
        classifier_swap_type(config.lake, projection.pca_version, sc.broadcast)
        if config.predictions
        else None
    )
    files = HadoopFiles(spark)
    files.mkdirs(config.manifests_uri)
    board = BatchStatsBoard()
    emf = (
        EmfPublisher(config.cloudwatch_log_group, config.metrics_namespace, config.stage)
        if config.cloudwatch_log_group
        else None
    )
    epochs = EpochCheckpoints(spark, config.checkpoint, config.checkpoint_epoch_hours)
    epochs.open()
    listener = ProgressListener(
        config,
        board,
        emf=emf,
        backlog=ManifestBacklog(config.manifests_uri, epochs.current_uri),
    )
    spark.streams.addListener(listener)

    def start_query(checkpoint_uri: str):
        writer = (
            read_manifests(spark, config)
            .writeStream.queryName(QUERY_NAME)
            .foreachBatch(
                MicroBatchWriter(spark, config, context, board, sink, checkpoint_uri, classifier_swap)
            )
            .option("checkpointLocation", checkpoint_uri)
        )
        writer = (
            writer.trigger(availableNow=True)
            if config.available_now
            else writer.trigger(processingTime=f"{config.trigger_seconds} seconds")
        )
        return writer.start()

    rotation = EpochRotation(
        epochs,
        start_query,
        stop_between_batches,
        listener.terminated,
        clean_last_batch=lambda checkpoint_uri: clean_last_batch(spark, config, checkpoint_uri),
    )
    query = rotation.start()
    # Beats until the stream is over (drain_listener), across the queries of a checkpoint rotation.
    Heartbeat(config.heartbeat_seconds, listener.heartbeat, until=listener.stream_ended).start()
    log.info(
        "query %s started: featurizer %s, PCA %s (k=%d)",
        QUERY_NAME,
        spec.model_version,
        projection.pca_version,
        projection.k,
    )
    return RunningStream(
        query=query,
        listener=listener,
        model_version=spec.model_version,
        pca_version=projection.pca_version,
        k=projection.k,
        explained_variance=list(projection.explained_variance),
        rotation=rotation,
        classifier_swap=classifier_swap,
    )


def install_stop_signals(stop_requested: threading.Event) -> None:
    """SIGTERM (and Ctrl-C) ask for a clean stop after the current micro-batch."""

    def request_stop(signum, _frame) -> None:
        log.warning("signal %d received: stopping after the current micro-batch", signum)
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def await_stream(
    spark: SparkSession,
    running: RunningStream,
    config: StreamConfig,
    stop_requested: threading.Event,
    poll_seconds: float = STOP_POLL_SECONDS,
) -> str:
    """Wait until the query ends by itself (available-now) or a stop is asked; return why it ended.

    Raises the query's exception when it failed.
    """
    reason = "finished"
    while running.query.isActive:
        query = running.query
        if stop_requested.is_set():
            reason = "stop requested"
        elif uris.exists(config.stop_marker_uri):
            reason = "stop marker"
        else:
            # A failed query is raised below, once the listener has recorded why (drain_listener).
            with contextlib.suppress(StreamingQueryException):
                query.awaitTermination(poll_seconds)
            running.query = running.rotation.rotate_if_due(query)
            continue
        stop_between_batches(query)
        if reason == "stop marker":
            HadoopFiles(spark).delete(config.stop_marker_uri)
        break
    query = running.query
    failure = query.exception()
    drain_listener(spark, running.listener)
    if failure is not None:
        raise RuntimeError(f"the streaming query failed: {failure}")
    if reason == "finished" and config.available_now:
        # Spark would only clean the last batch's manifests when a next batch starts.
        clean_last_batch(spark, config, running.rotation.epochs.current_uri())
    log.info("query %s ended: %s", QUERY_NAME, reason)
    return reason


def stop_between_batches(query, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
    """Stop the query when no micro-batch is running (interrupting one only after the grace period)."""
    deadline = time.monotonic() + grace_seconds
    while query.isActive and query.status["isTriggerActive"] and time.monotonic() < deadline:
        time.sleep(0.2)
    query.stop()


def drain_listener(
    spark: SparkSession, listener: ProgressListener, timeout_seconds: float = LISTENER_DRAIN_SECONDS
) -> None:
    """Wait for the listener to see the query's end (events arrive asynchronously), then remove it.

    The stream is then over: its heartbeat stops.
    """
    if not listener.terminated.wait(timeout_seconds):
        log.warning("the query's termination event did not arrive within %.0f s", timeout_seconds)
    listener.stream_ended.set()
    spark.streams.removeListener(listener)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging() -> None:
    """INFO for the pipeline's own loggers; py4j's per-call chatter stays out."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("py4j").setLevel(logging.WARNING)


def run_stream(config: StreamConfig, master: str | None = None) -> int:
    """Build the session, start the query and wait: the body of `fruits stream` and main.py.

    Returns 0 after a clean stop (stop marker, SIGTERM, available-now backlog done),
    2 when the model artifacts are missing or inconsistent, or do not match the features table's.
    """
    from streaming_job.featurizer.model import FeaturizerError
    from streaming_job.featurizer.pca import PcaError
    from streaming_job.session import build_spark_session

    spark = build_spark_session("fruits-stream", master=master)
    stop_requested = threading.Event()
    install_stop_signals(stop_requested)
    try:
        try:
            running = start_stream(spark, config)
        except Exception as error:
            # A failed query is recorded by the listener; a start that fails, here.
            record_start_failure(config, error)
            raise
        await_stream(spark, running, config, stop_requested)
    except (FeaturizerError, PcaError, ConfigError) as error:
        log.error("cannot start the stream: %s", error)
        return 2
    finally:
        spark.stop()
    return 0


def record_start_failure(config: StreamConfig, error: BaseException) -> None:
    """Why this start failed, as a failed query records it (streaming_job.monitoring.failure), best effort.

    latest.json is updated only on a lake where the stream has run (NEVER-RAN stays so); the
    StreamFailed metric is sent whenever metrics are configured.
    """
    failure = failure_of(f"{type(error).__name__}: {error}")
    now = utc_now()
    try:
        status = StatusLog(config.status_uri)
        latest = status.read_latest()
        if latest is not None:
            status.write_latest(
                {**latest, **failed_status(failure, now), "updated_at": contracts.iso_utc(now)}
            )
        if config.cloudwatch_log_group:
            emf = EmfPublisher(config.cloudwatch_log_group, config.metrics_namespace, config.stage)
            emf.send(failure_emf(failure, now, config.metrics_namespace, config.stage), None)
    except Exception as unrecorded:
        # One line, no traceback: the start's own error follows, and a lake the driver cannot reach (no
        # credentials, no bucket) is the usual reason this record cannot be written either.
        log.warning("could not record why the stream failed to start (%s)", type(unrecorded).__name__)
