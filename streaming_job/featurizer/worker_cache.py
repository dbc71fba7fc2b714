"""Per-process state of a Python worker: the featurizer and the image reader.

With `spark.python.worker.reuse=true` a worker process runs many tasks and
micro-batches in turn; building the model or interpreter once per process
(from the broadcast spec) instead of once per task or batch is what makes the
stream fast. The build count is exposed so tests and metrics can prove it.
Threads follow the task's cores: TensorFlow's pools for the Keras runtime, the
interpreter's threads for LiteRT (which never imports TensorFlow).
"""

from __future__ import annotations

import logging
import os
import threading

from streaming_job.featurizer.image_io import (
    DEFAULT_READ_TIMEOUT_SECONDS,
    ImageReader,
    read_threads,
    threads_per_core_from_env,
)
from streaming_job.featurizer.runtimes import DEFAULT_BATCH_SIZE, Featurizer

log = logging.getLogger(__name__)

# Libraries that size their thread pools from these variables when they start.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# TensorFlow can schedule two independent ops at once; more only oversubscribes the task's cores.
INTER_OP_THREADS = 2

_lock = threading.Lock()
_keras_models: dict[str, object] = {}
_featurizers: dict[tuple[str, int], Featurizer] = {}
_builds: dict[str, int] = {}
_threads_configured: int | None = None
_readers: dict[float, ImageReader] = {}
_classifiers: dict[str, object] = {}


def configure_threads(cores_per_task: int) -> None:
    """Size TensorFlow's and OpenMP's thread pools to the cores Spark gives each task.

    Must run before the process's first TensorFlow op; later calls are no-ops
    (TensorFlow cannot resize its pools once started).
    """
    global _threads_configured
    if cores_per_task < 1:
        raise ValueError(f"cores_per_task must be >= 1, got {cores_per_task}")
    with _lock:
        if _threads_configured is not None:
            return
        for name in THREAD_ENV_VARS:
            os.environ[name] = str(cores_per_task)
        os.environ["TF_NUM_INTEROP_THREADS"] = str(min(INTER_OP_THREADS, cores_per_task))
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(cores_per_task)
            tf.config.threading.set_inter_op_parallelism_threads(min(INTER_OP_THREADS, cores_per_task))
        except RuntimeError:
            log.warning("TensorFlow already started in this process: its thread pools keep their size")
        _threads_configured = cores_per_task


def task_cores(default: int = 1) -> int:
    """`spark.task.cpus` of the running task (`default` outside a Spark task)."""
    from pyspark import TaskContext

    context = TaskContext.get()
    return context.cpus() if context is not None else default


def cached_featurizer(
    spec_broadcast, batch_size: int = DEFAULT_BATCH_SIZE, cores_per_task: int | None = None
) -> Featurizer:
    """The process's featurizer for the broadcast spec: built on first use only.

    Keyed by model_version: a new artifact gets a new featurizer, a repeated
    call (next task, next micro-batch) gets the cached one. Threads are sized
    from `cores_per_task` or the running task's `spark.task.cpus`.
    """
    spec = spec_broadcast.value
    key = (spec.model_version, batch_size)
    cached = _featurizers.get(key)
    if cached is not None:
        return cached
    cores = cores_per_task or task_cores()
    if spec.runtime == "keras":
        configure_threads(cores)
    with _lock:
        if key not in _featurizers:
            _featurizers[key] = _build(spec, batch_size, cores)
        return _featurizers[key]


def _build(spec, batch_size: int, cores: int) -> Featurizer:
    """A featurizer for the spec; a Keras model is built once per process whatever the batch size.

    (The caller holds the lock.) A LiteRT interpreter costs milliseconds and is
    built per featurizer. Each counts as a build: one per model_version and batch
    size when caching works.
    """
    from streaming_job.featurizer.model import build_featurizer, build_model

    model = _keras_models.get(spec.model_version)
    if model is None:
        if spec.runtime == "keras":
            model = _keras_models[spec.model_version] = build_model(spec)
        _builds[spec.model_version] = _builds.get(spec.model_version, 0) + 1
        log.info("featurizer %s built in worker process %d", spec.model_version, os.getpid())
    return build_featurizer(spec, batch_size=batch_size, threads=cores, keras_model=model)


def cached_image_reader(
    cores_per_task: int | None = None, timeout_seconds: float = DEFAULT_READ_TIMEOUT_SECONDS
) -> ImageReader:
    """The process's image reader for a read timeout (one S3 client and thread pool per worker process).

    Its threads follow the task's cores (`cores_per_task`, else `spark.task.cpus`) times the I/O factor
    (image_io.read_threads); a worker runs one task at a time, so that is all the reads it needs.
    """
    with _lock:
        if timeout_seconds not in _readers:
            threads = read_threads(cores_per_task or task_cores(), threads_per_core_from_env())
            _readers[timeout_seconds] = ImageReader(threads, timeout_seconds=timeout_seconds)
        return _readers[timeout_seconds]


def cached_classifier(classifier_broadcast):
    """The process's classifier for the broadcast one: unpickled once per version, then reused.

    A new version (a hot swap) replaces the cached one: a worker holds one classifier at a time.
    """
    wanted = classifier_broadcast.value
    with _lock:
        cached = _classifiers.get(wanted.version)
        if cached is None:
            _classifiers.clear()
            cached = _classifiers[wanted.version] = wanted
            log.info("classifier %s loaded in worker process %d", wanted.version, os.getpid())
        return cached


def model_builds_in_this_process(model_version: str | None = None) -> int:
    """Featurizer models this process built: of one model_version (1 when caching works), or in all."""
    if model_version is not None:
        return _builds.get(model_version, 0)
    return sum(_builds.values())
