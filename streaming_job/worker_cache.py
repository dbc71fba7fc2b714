"""Per-process state of a Python worker: the featurizer model and the image reader.

With `spark.python.worker.reuse=true` a worker process runs many tasks and
micro-batches in turn; building the model once per process (from the
broadcast weights) instead of once per task or batch is what makes the stream
fast. The build count is exposed so tests and metrics can prove it.
"""

from __future__ import annotations

import logging
import os
import threading

from streaming_job.featurize import DEFAULT_BATCH_SIZE, Featurizer
from streaming_job.image_io import ImageReader

log = logging.getLogger(__name__)

# Libraries that size their thread pools from these variables when they start.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# TensorFlow can schedule two independent ops at once; more only oversubscribes the task's cores.
INTER_OP_THREADS = 2

_lock = threading.Lock()
_models: dict[str, object] = {}
_featurizers: dict[tuple[str, int], Featurizer] = {}
_builds: dict[str, int] = {}
_threads_configured: int | None = None
_reader: ImageReader | None = None


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
    """The process's featurizer for the broadcast spec: the model is built on first use only.

    Keyed by model_version: a new artifact gets a new model, a repeated call
    (next task, next micro-batch) gets the cached one. Threads are sized first,
    from `cores_per_task` or the running task's `spark.task.cpus`.
    """
    spec = spec_broadcast.value
    key = (spec.model_version, batch_size)
    cached = _featurizers.get(key)
    if cached is not None:
        return cached
    configure_threads(cores_per_task or task_cores())
    with _lock:
        if key not in _featurizers:
            _featurizers[key] = Featurizer(_model_for(spec), spec.model_version, batch_size=batch_size)
        return _featurizers[key]


def _model_for(spec):
    """The Keras model of a spec, built once per process (caller holds the lock)."""
    from streaming_job.model import build_model

    if spec.model_version not in _models:
        _models[spec.model_version] = build_model(spec)
        _builds[spec.model_version] = _builds.get(spec.model_version, 0) + 1
        log.info("featurizer %s built in worker process %d", spec.model_version, os.getpid())
    return _models[spec.model_version]


def cached_image_reader() -> ImageReader:
    """The process's image reader (one S3 client and thread pool per worker process)."""
    global _reader
    with _lock:
        if _reader is None:
            _reader = ImageReader()
        return _reader


def model_builds_in_this_process(model_version: str | None = None) -> int:
    """Featurizer models this process built: of one model_version (1 when caching works), or in all."""
    if model_version is not None:
        return _builds.get(model_version, 0)
    return sum(_builds.values())
