"""A pause of the driver or the JVM longer than Spark's 15 s hand-off timeout must not hang a batch.

The micro-batch's rows reach the driver through toArrow: the JVM serves them on a
local socket and the driver connects to it. With Spark's defaults, when more than
15 s pass between the two (a long GC, a stopped process), the JVM's accept times out,
its serving thread never completes the result, and toArrow waits on it for good.
The pause is injected where it hurts: the driver's connect, delayed past the default.
"""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.spark]

SPARK_DEFAULT_HAND_OFF_SECONDS = 15
PAUSE_SECONDS = SPARK_DEFAULT_HAND_OFF_SECONDS + 3
# Far more than the pause plus a small job: a collect still running by then has hung.
HUNG_AFTER_SECONDS = 120.0


def test_a_collect_survives_a_pause_longer_than_sparks_hand_off_timeout(spark, monkeypatch):
    import pyspark.util

    connect = pyspark.util.local_connect_and_auth
    paused = []

    def connect_after_a_pause(port, auth_secret):
        if not paused:
            paused.append(port)
            time.sleep(PAUSE_SECONDS)  # the injected fault: the driver stalls before picking up the rows
        return connect(port, auth_secret)

    monkeypatch.setattr(pyspark.util, "local_connect_and_auth", connect_after_a_pause)
    frame = spark.range(40).selectExpr("id", "id * 2 AS twice")
    result: dict[str, object] = {}

    def collect() -> None:
        try:
            result["table"] = frame.toArrow()
        except Exception as error:  # reported by the assertion below
            result["error"] = error

    worker = threading.Thread(target=collect, daemon=True)
    worker.start()
    worker.join(HUNG_AFTER_SECONDS)

    assert paused, "the pause was not injected: toArrow no longer connects through local_connect_and_auth"
    assert not worker.is_alive(), (
        f"toArrow still waits {HUNG_AFTER_SECONDS:.0f} s after a {PAUSE_SECONDS} s pause"
    )
    assert "error" not in result, result.get("error")
    table = result["table"]
    assert isinstance(table, pa.Table)
    assert sorted(table.column("twice").to_pylist()) == [2 * n for n in range(40)]
