"""The one place a SparkSession is built, for the CLI, spark-submit and the tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import SparkSession

# How long either end of a JVM-to-Python hand-off socket (the micro-batch's toArrow, a worker's
# connection) waits for the other. Spark's 15 s default turns a pause of the driver or the JVM (a long
# GC, a stopped or starved process) into a batch hung for good: the JVM's accept times out, its serving
# thread never completes the result, and toArrow waits on that result forever (docs/stream.md).
HAND_OFF_TIMEOUT_SECONDS = 600
# The driver's own side of the same sockets (pyspark.util.local_connect_and_auth reads it at each call).
DRIVER_SOCKET_TIMEOUT_ENV = "SPARK_AUTH_SOCKET_TIMEOUT"
# Settings every run needs. Python workers are reused so the featurizer model, cached
# per worker process, survives across tasks and micro-batches (docs/design.md, known pitfalls).
BASE_CONF: dict[str, str] = {
    "spark.python.worker.reuse": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
    "spark.python.authenticate.socketTimeout": f"{HAND_OFF_TIMEOUT_SECONDS}s",
}
# Only in local mode: on EMR the cluster's spark-defaults decide.
LOCAL_CONF: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.driver.memory": "2g",
    # The file source resolves each micro-batch's manifests as a list of paths; above the
    # threshold (default 32) Spark stats them in a Spark job of one task per file, which
    # cost ~1.6 s per 200-manifest batch locally against ~60 ms listed in the driver.
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
    # A manifest is ~1 KB but Spark counts 4 MB per file opened, so a 500-manifest batch
    # was read in 17 tasks; counting 16 KB packs it into 2-3 (file:// opens are cheap).
    "spark.sql.files.openCostInBytes": "16384",
    # Python workers fork from a daemon that has imported their libraries (worker_daemon.py). Locally
    # only: on a cluster the package may come from the job zip, which a worker adds to its path per task.
    "spark.python.daemon.module": "streaming_job.worker_daemon",
}


# Local runs only: Spark's start-up warnings (native Hadoop, loopback address, trigger lag) at ERROR.
LOCAL_LOG4J2 = Path(__file__).with_name("log4j2-local.properties")


def local_java_options() -> str:
    """The driver JVM's options in local mode: the quiet log4j2 configuration."""
    return f"-Dlog4j2.configurationFile={LOCAL_LOG4J2.as_uri()}"


def build_spark_session(
    app_name: str, master: str | None = None, extra_conf: dict[str, str] | None = None
) -> SparkSession:
    """Build (or reuse) the session; `master=None` lets spark-submit decide."""
    builder = SparkSession.builder.appName(app_name)
    conf = dict(BASE_CONF)
    os.environ[DRIVER_SOCKET_TIMEOUT_ENV] = str(HAND_OFF_TIMEOUT_SECONDS)
    if master is not None:
        builder = builder.master(master)
        if master.startswith("local"):
            # Workers must run the same interpreter (and venv) as the driver.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
            # One machine: bind to loopback (no "hostname resolves to a loopback address" warning).
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            conf.update(LOCAL_CONF)
            conf["spark.driver.extraJavaOptions"] = local_java_options()
    conf.update(extra_conf or {})
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if master is None or not master.startswith("local"):
        spark.sparkContext.setLogLevel("WARN")  # locally, log4j2-local.properties decides
    return spark


@contextmanager
def command_session(app_name: str, master: str | None = None) -> Iterator[SparkSession]:
    """A session for one command's work, stopped after it unless it was already running.

    A notebook, the tests or a calling command may hold the active session: stopping it
    from inside a library call would kill their session (and every later query on it).
    """
    owned = SparkSession.getActiveSession() is None
    spark = build_spark_session(app_name, master=master)
    try:
        yield spark
    finally:
        if owned:
            spark.stop()
