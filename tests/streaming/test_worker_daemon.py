"""Local Python workers fork from streaming_job.worker_daemon, which has imported their libraries."""

from __future__ import annotations

import pytest

from streaming_job import worker_daemon


def test_the_daemon_preloads_every_library_it_names():
    assert worker_daemon.preload() == []


def test_a_library_that_cannot_be_imported_is_left_to_the_worker(monkeypatch):
    monkeypatch.setattr(worker_daemon, "PRELOADED", ("pandas", "no_such_library_here"))
    assert worker_daemon.preload() == ["no_such_library_here"]


@pytest.mark.spark
def test_a_local_sessions_workers_are_forked_from_the_daemon_with_the_featurizer_imported(spark):
    # WHEN a task of the shared local session looks at its own process
    def inspect(batches):
        import os
        import sys

        import pandas as pd

        with open(f"/proc/{os.getppid()}/cmdline", "rb") as parent:
            daemon = parent.read().replace(b"\0", b" ").decode()
        for batch in batches:
            yield pd.DataFrame(
                {
                    "daemon": [daemon] * len(batch),
                    "litert_loaded": ["ai_edge_litert.interpreter" in sys.modules] * len(batch),
                }
            )

    schema = "daemon string, litert_loaded boolean"
    rows = spark.range(4, numPartitions=2).mapInPandas(inspect, schema).collect()
    # THEN its parent is `python -m streaming_job.worker_daemon pyspark.worker`, and LiteRT is imported
    assert {tuple(row["daemon"].split()[-3:]) for row in rows} == {
        ("-m", "streaming_job.worker_daemon", "pyspark.worker")
    }
    assert all(row["litert_loaded"] for row in rows)
