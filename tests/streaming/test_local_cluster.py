"""The stream on two executor JVMs (`local-cluster[2,1,1024]`): per-executor model builds, the broadcast,
and exactly once across a SIGKILL between the two table appends.

`local[2]` runs every task in the driver's JVM; here each executor is a JVM of its own with its
own Python worker, so the featurizer spec and PCA arrive through the broadcast and each worker
builds the model itself, as on EMR.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from fruits_core import contracts
from fruits_lake.reading import lake_tables
from tests.streaming.stream_testkit import FRUITS, every_nth, ingest_images, stream_args
from tests.streaming.test_exactly_once import START_TIMEOUT, run_until_killed, stream_commits

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.tf]

CLUSTER = "local-cluster[2,1,1024]"
MANIFESTS = 12


def executor_submit_args() -> str:
    """PYSPARK_SUBMIT_ARGS giving the executor JVMs the drivers' options (tests/conftest.py).

    SPARK_SUBMIT_OPTS: C1 only, and Spark's classes mapped from the suite's class archive, which an
    executor, started with the driver's class path, can use as well; set empty, the JVMs' defaults.
    """
    options = os.environ.get("SPARK_SUBMIT_OPTS", "")
    return f"--conf {shlex.quote('spark.executor.extraJavaOptions=' + options)} pyspark-shell"


def model_builds(lake: Path) -> list[int]:
    """model_builds of every progress record the status log holds, in batch order."""
    folder = lake / contracts.STATUS_PREFIX
    records = [json.loads(path.read_text()) for path in sorted(folder.rglob("progress/*/*.json"))]
    return [record["model_builds"] for record in records if record["input_rows"]]


def test_two_executors_build_the_model_each_and_keep_exactly_once_through_a_sigkill(
    models, sample_image_paths, tmp_path, monkeypatch
):
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", executor_submit_args())
    # GIVEN 12 ingested images (two batches of 6)
    lake = tmp_path / "lake"
    outcomes = ingest_images(lake, tmp_path / "uploads", every_nth(sample_image_paths, MANIFESTS))
    accepted = sorted(outcome.image_id for outcome in outcomes if outcome.status == "accepted")
    # WHEN the stream on two executors is SIGKILLed between a batch's features and errors appends
    run_until_killed("between-commits", lake, models, tmp_path, tmp_path / "stream.log", master=CLUSTER)
    features, _ = lake_tables(lake.as_uri())
    [(query_id, _)] = stream_commits(features)
    # AND restarted on two executors to drain the backlog
    final = subprocess.run(
        [FRUITS, "stream", "--master", CLUSTER, *stream_args(lake, *models, "--available-now")],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    # THEN it ends cleanly, every image is in the table once, each batch committed once
    assert final.returncode == 0, final.stderr[-3000:]
    assert sorted(features.refresh().scan().to_arrow().column("image_id").to_pylist()) == accepted
    commits = stream_commits(features)
    assert len(commits) == len(set(commits)) and {query for query, _ in commits} == {query_id}
    # AND the drain built the model exactly once in each executor's Python worker (the broadcast
    # reached both JVMs; a worker reuses its model for every later batch)
    builds = model_builds(lake)
    assert len(builds) == len(commits) and sum(builds) == 2, builds
