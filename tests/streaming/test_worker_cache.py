"""One model per Python worker process: built from the broadcast spec once, reused by every task and batch."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from streaming_job.featurizer import worker_cache
from streaming_job.featurizer.worker_cache import cached_featurizer, model_builds_in_this_process
from tests.streaming.featurizer_testkit import seeded_spec

pytestmark = pytest.mark.tf

REPORT_SCHEMA = (
    "pid long, builds long, intra_op_threads long, omp_threads string, task_cpus long, "
    "rows long, featurized long"
)


def report_per_batch(spec_broadcast):
    """mapInPandas body: featurize each Arrow batch and report which process did it and its build count."""

    def run(batches):
        import os

        import pandas as pd
        import tensorflow as tf
        from pyspark import TaskContext

        from streaming_job.featurizer.featurize import featurize_uris
        from streaming_job.featurizer.worker_cache import (
            cached_featurizer,
            cached_image_reader,
            model_builds_in_this_process,
        )

        for batch in batches:
            featurizer = cached_featurizer(spec_broadcast, batch_size=4)
            result = featurize_uris(batch["image_uri"].tolist(), featurizer, None, cached_image_reader())
            yield pd.DataFrame(
                [
                    {
                        "pid": os.getpid(),
                        "builds": model_builds_in_this_process(featurizer.model_version),
                        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                        "omp_threads": os.environ.get("OMP_NUM_THREADS"),
                        "task_cpus": TaskContext.get().cpus(),
                        "rows": len(batch),
                        "featurized": len(batch) - result.error_count,
                    }
                ]
            )

    return run


@pytest.mark.spark
def test_each_worker_process_builds_the_model_once_across_tasks_and_micro_batches(spark, sample_image_paths):
    # GIVEN the spec broadcast once, 48 real images in 6 partitions, and Arrow batches of 4 rows
    spec_broadcast = spark.sparkContext.broadcast(seeded_spec())
    image_uris = [path.as_uri() for path in sample_image_paths[::2][:48]]
    frame = spark.createDataFrame([(uri,) for uri in image_uris], "image_uri string").repartition(6)
    previous_batch_rows = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "4")
    try:
        # WHEN two jobs run (like two micro-batches), each with several tasks and batches per task
        reports = []
        for _ in range(2):
            reports += frame.mapInPandas(report_per_batch(spec_broadcast), REPORT_SCHEMA).collect()
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", previous_batch_rows)
    # THEN every image was featurized, in many batches ...
    assert sum(report.featurized for report in reports) == 2 * len(image_uris)
    assert len(reports) >= 24
    # ... and each worker process built the model exactly once, however many batches it ran
    builds_per_pid = {}
    for report in reports:
        builds_per_pid.setdefault(report.pid, set()).add(report.builds)
    assert all(builds == {1} for builds in builds_per_pid.values()), builds_per_pid
    assert len(reports) > len(builds_per_pid)
    # AND TensorFlow / OpenMP threads were sized to the cores of a task, not of the machine
    assert {(r.intra_op_threads, r.omp_threads) for r in reports} == {
        (r.task_cpus, str(r.task_cpus)) for r in reports
    }


def test_cached_featurizer_reuses_the_model_and_keys_it_by_version(monkeypatch):
    # GIVEN a broadcast-like handle on the spec (this process: TensorFlow already running)
    for name in (*worker_cache.THREAD_ENV_VARS, "TF_NUM_INTEROP_THREADS"):
        monkeypatch.setenv(name, os.environ.get(name, ""))
    handle = SimpleNamespace(value=seeded_spec())
    version = seeded_spec().model_version
    # WHEN asked three times, once with another forward-pass size
    first = cached_featurizer(handle, batch_size=16, cores_per_task=1)
    builds = model_builds_in_this_process(version)
    second = cached_featurizer(handle, batch_size=16, cores_per_task=1)
    other_size = cached_featurizer(handle, batch_size=32, cores_per_task=1)
    # THEN the same featurizer comes back, and a new batch size reuses the same model
    assert second is first
    assert other_size.batch_size == 32 and other_size._model is first._model
    assert builds == 1 and model_builds_in_this_process(version) == 1
    assert model_builds_in_this_process("another-version") == 0


def test_thread_count_must_be_positive():
    with pytest.raises(ValueError, match="cores_per_task must be >= 1"):
        worker_cache.configure_threads(0)
