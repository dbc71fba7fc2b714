"""The one retry policy of every table commit: bounded exponential backoff with jitter, typed errors.

Every writer of the lake (the stream's sink, maintenance, the table part of an
erasure) commits optimistically and may meet a transient failure: a concurrent
commit (Iceberg's CommitFailedException), a catalog that is busy (SQLite's
"database is locked", Glue throttling or a timeout) or storage that is briefly
unavailable (a full disk, a folder not writable yet). Those are retried, each
attempt starting from freshly read metadata; anything else (a bug, a bad row)
fails at once. The waits grow 2x per attempt up to a cap, each drawn between
half and all of its step (equal jitter), so two writers that collided do not
collide again in lockstep.
"""

from __future__ import annotations

import errno
import logging
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from pyiceberg.exceptions import CommitFailedException

log = logging.getLogger(__name__)
T = TypeVar("T")

# OSError numbers that a writer can outlive: the disk fills and is freed, a folder's permissions
# are being repaired, a network filesystem stalls. A missing file is not among them.
TRANSIENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EAGAIN, errno.EIO, errno.ETIMEDOUT, errno.EBUSY}
)
# Messages of a busy catalog database (SQLAlchemy's OperationalError wraps sqlite3's).
BUSY_CATALOG_MESSAGES = ("database is locked", "database table is locked", "database is busy")
# AWS error codes of throttling and of a service that is briefly unavailable (Glue, S3, STS).
TRANSIENT_AWS_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalServiceException",
        "InternalServerException",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
        "ConcurrentModificationException",
    }
)
# botocore's connection-level failures, by class name (botocore is not imported here).
TRANSIENT_AWS_CLASSES = frozenset(
    {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"}
)


class RetriesExhausted(RuntimeError):
    """Every attempt met a transient failure; the last one is the cause."""


def is_transient(error: BaseException) -> bool:
    """Whether a later attempt, on freshly read metadata, may succeed (follows the cause chain)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _transient_here(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _transient_here(error: BaseException) -> bool:
    if isinstance(error, CommitFailedException):
        return True
    if isinstance(error, OSError) and error.errno in TRANSIENT_ERRNOS:
        return True
    if isinstance(error, TimeoutError):
        return True
    if type(error).__name__ == "OperationalError":
        return any(message in str(error).lower() for message in BUSY_CATALOG_MESSAGES)
    if type(error).__name__ in TRANSIENT_AWS_CLASSES:
        return True
    botocore_exceptions = sys.modules.get("botocore.exceptions")
    if botocore_exceptions is not None and isinstance(error, botocore_exceptions.ClientError):
        return error.response.get("Error", {}).get("Code", "") in TRANSIENT_AWS_CODES
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a commit is retried.

    The defaults wait about 25-50 s in all before giving up: enough for a catalog locked for
    half a minute, short enough that a real outage fails the batch (Spark re-runs it).
    """

    attempts: int = 8
    first_delay_s: float = 0.5
    max_delay_s: float = 15.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    jitter: Callable[[], float] = field(default=random.random, compare=False)

    def delay(self, retry: int) -> float:
        """The wait before retry number `retry` (1 = the second attempt)."""
        step = min(self.first_delay_s * 2 ** (retry - 1), self.max_delay_s)
        return step / 2 + step / 2 * self.jitter()


DEFAULT_POLICY = RetryPolicy()


def run_with_retry(
    attempt: Callable[[], T],
    what: str,
    policy: RetryPolicy = DEFAULT_POLICY,
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """Run `attempt` until it succeeds, a non-transient error escapes, or the attempts run out.

    `attempt` must start from freshly read state (refresh the table first): a retry after a
    concurrent commit must see that commit. `on_retry` hears each transient failure (counting).
    """
    for number in range(1, policy.attempts + 1):
        try:
            return attempt()
        except Exception as error:
            if not is_transient(error):
                raise
            if number == policy.attempts:
                raise RetriesExhausted(
                    f"{what}: {policy.attempts} attempts failed, the last: {error}"
                ) from error
            log.warning("%s: attempt %d failed (%s: %s), retrying", what, number, type(error).__name__, error)
            if on_retry is not None:
                on_retry(error)
            policy.sleep(policy.delay(number))
    raise AssertionError("unreachable")
