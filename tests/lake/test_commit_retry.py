"""The lake's one retry policy: which failures are retried, how long it waits, when it gives up."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from pyiceberg.exceptions import CommitFailedException
from sqlalchemy import event

from fruits_lake.catalog import FEATURES_TABLE, ensure_tables, open_catalog
from fruits_lake.commit_retry import RetriesExhausted, RetryPolicy, is_transient, run_with_retry
from tests.lake.test_sink import PCA, QUERY, error_rows, feature_rows, image_ids


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "UpdateTable")


@pytest.mark.parametrize(
    "error",
    [
        CommitFailedException("branch main has changed"),
        OSError(errno.ENOSPC, "No space left on device"),
        PermissionError(errno.EACCES, "Permission denied"),
        client_error("ThrottlingException"),
        client_error("ConcurrentModificationException"),
        ReadTimeoutError(endpoint_url="https://glue"),
        TimeoutError("timed out"),
    ],
)
def test_commit_races_busy_catalogs_full_disks_and_throttling_are_transient(error):
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad row"),
        FileNotFoundError(errno.ENOENT, "gone"),
        client_error("AccessDeniedException"),
        client_error("EntityNotFoundException"),
    ],
)
def test_bugs_missing_files_and_refusals_are_not(error):
    assert not is_transient(error)


def test_a_wrapped_transient_error_is_found_through_its_cause():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as disk:
            raise RuntimeError("write failed") from disk
    except RuntimeError as wrapped:
        assert is_transient(wrapped)


def test_waits_double_up_to_the_cap_with_jitter_within_each_step():
    low = RetryPolicy(first_delay_s=1.0, max_delay_s=5.0, jitter=lambda: 0.0)
    high = RetryPolicy(first_delay_s=1.0, max_delay_s=5.0, jitter=lambda: 1.0)
    assert [low.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 2.5, 2.5]
    assert [high.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_a_transient_failure_is_retried_and_a_persistent_one_gives_up_after_the_attempts():
    waits: list[float] = []
    policy = RetryPolicy(attempts=3, sleep=waits.append, jitter=lambda: 0.0)
    outcomes = iter([OSError(errno.EROFS, "read-only"), "done"])

    def flaky():
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert run_with_retry(flaky, "test", policy) == "done" and len(waits) == 1
    with pytest.raises(RetriesExhausted) as exhausted:
        run_with_retry(lambda: (_ for _ in ()).throw(CommitFailedException("x")), "test", policy)
    assert isinstance(exhausted.value.__cause__, CommitFailedException) and len(waits) == 3
    with pytest.raises(ValueError):
        run_with_retry(lambda: (_ for _ in ()).throw(ValueError("bug")), "test", policy)


def test_the_sink_waits_out_a_locked_catalog(tmp_path: Path):
    """A real SQLite lock on the catalog (another process mid-write): the sink's commit waits and lands."""
    from fruits_lake.sink import TableSink

    catalog = open_catalog(str(tmp_path))
    features, errors = ensure_tables(catalog)
    locker = sqlite3.connect(tmp_path / "catalog" / "iceberg.db", timeout=0)
    released = []

    def release_lock(_seconds: float) -> None:
        # The policy's wait is the controllable clock: the lock goes away during the first wait.
        if not released:
            locker.rollback()
            released.append(True)

    sink = TableSink(features, errors, PCA, policy=RetryPolicy(sleep=release_lock))
    sink.features.refresh()
    locker.execute("BEGIN EXCLUSIVE")
    catalog.engine.dispose()
    # SQLite's own busy wait is cut short, so the lock is met at once as "database is locked".
    event.listen(
        catalog.engine, "connect", lambda connection, _: connection.execute("PRAGMA busy_timeout = 0")
    )
    result = sink.write(feature_rows(image_ids(3)), error_rows(1), QUERY, 0)
    assert released and result.features_committed and result.errors_committed
    assert catalog.load_table(FEATURES_TABLE).scan().to_arrow().num_rows == 3
