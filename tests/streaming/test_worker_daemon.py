"""Local Python workers fork from streaming_job.worker_daemon, which has imported their libraries."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from streaming_job import worker_daemon


def test_the_daemon_preloads_every_library_it_names():
    assert worker_daemon.preload() == []


def test_a_library_that_cannot_be_imported_is_left_to_the_worker(monkeypatch):
    monkeypatch.setattr(worker_daemon, "PRELOADED", ("pandas", "no_such_library_here"))
    assert worker_daemon.preload() == ["no_such_library_here"]


def test_the_zips_of_the_installed_pyspark_give_way_to_its_compiled_modules(tmp_path):
    import pyspark

    # GIVEN a worker's path as Spark sets it: the installed package's own zips first, then a job zip
    lib = Path(pyspark.__file__).parent / "python" / "lib"
    zips = [str(lib / "pyspark.zip"), str(next(lib.glob("py4j-*-src.zip")))]
    job_zip = str(tmp_path / "fruits_job.zip")
    path = [*zips, job_zip, *sys.path]
    # WHEN the daemon clears its path THEN the installed package's zips are gone, and only they
    assert worker_daemon.without_shadowing_zips(path) == [job_zip, *sys.path]


def test_zips_are_kept_where_pyspark_is_not_installed_beside_them(tmp_path):
    # GIVEN a node where PySpark comes only from SPARK_HOME's zips (no installed package on the path)
    spark_home_lib = tmp_path / "spark" / "python" / "lib"
    path = [str(spark_home_lib / "pyspark.zip"), str(spark_home_lib / "py4j-0.10.9.9-src.zip"), str(tmp_path)]
    # THEN the path is left as it is
    assert worker_daemon.without_shadowing_zips(path) == path


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
                    "pyspark_file": [sys.modules["pyspark"].__file__] * len(batch),
                }
            )

    schema = "daemon string, litert_loaded boolean, pyspark_file string"
    rows = spark.range(4, numPartitions=2).mapInPandas(inspect, schema).collect()
    # THEN its parent is `python -m streaming_job.worker_daemon pyspark.worker`, and LiteRT is imported
    assert {tuple(row["daemon"].split()[-3:]) for row in rows} == {
        ("-m", "streaming_job.worker_daemon", "pyspark.worker")
    }
    assert all(row["litert_loaded"] for row in rows)
    # AND PySpark comes from the installed package (compiled), not from Spark's pyspark.zip
    import pyspark

    assert {row["pyspark_file"] for row in rows} == {pyspark.__file__}
