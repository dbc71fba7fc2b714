"""A library call's session never stops the caller's (the shared test session, a notebook's)."""

from __future__ import annotations

import pytest

from streaming_job.session import command_session

pytestmark = [pytest.mark.spark]


def test_a_command_session_leaves_an_already_running_session_running(spark):
    # GIVEN the caller's session is active WHEN a command opens and closes its own
    with command_session("fruits-test-command", master="local[1]") as inner:
        assert inner is spark  # getOrCreate hands back the running one
    # THEN the caller's session still runs queries
    assert spark.sparkContext._jsc is not None
    assert spark.range(3).count() == 3
