"""Why the stream died, in words an operator can act on, and nothing personal (pure).

When the query fails (or the driver cannot start it), the driver records its
cause before it exits: `latest.json` gets a `failure` object, `fruits status`
shows it, and with `--cloudwatch-log-group` an EMF record sends `StreamFailed` = 1
with a `Cause` dimension, which the stream-failed alarm and the dashboard name
(infra/emr-cluster.yaml). YARN then restarts the driver (spark.yarn.maxAppAttempts).

The cause comes from a fixed vocabulary (CAUSES), matched on the exception's class
name anywhere in Spark's error text (a foreachBatch error arrives wrapped in Java
exceptions, with the Python traceback inside). The message is kept only for the
pipeline's own exceptions, whose texts name tables, versions and settings; every
run of 16 or more hex digits (a pseudonym, an image id) is masked and the text cut
short, so no personal data reaches the status or a metric.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime

from fruits_core import contracts

# Cause (the metric dimension) -> exception class names that mean it, first match wins.
CAUSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # A catalog or storage outage outlasted the commit retries (fruits_lake/commit_retry.py).
    ("CatalogOrStorageUnavailable", ("RetriesExhausted",)),
    # A `--new-model-table` start renamed the table this stream writes to: stop this one for good.
    ("TableSwitched", ("TableSwitchedError",)),
    ("OutOfMemory", ("OutOfMemoryError", "MemoryError")),
    # A flag, a model artifact or the table's model is wrong: a restart fails the same way.
    ("Configuration", ("ConfigError", "FeaturizerError", "PcaError", "PcaVersionMismatch")),
)
OTHER_CAUSE = "Other"
# Whose messages the pipeline writes itself (safe to show once hex runs are masked).
OWN_EXCEPTIONS = frozenset(name for _, names in CAUSES for name in names) - {
    "OutOfMemoryError",
    "MemoryError",
}
MESSAGE_CHARS = 300
HEX_RUN = re.compile(r"[0-9a-fA-F]{16,}")
# A qualified or plain exception class at the start of a line (Python traceback, Java trace, Caused by).
EXCEPTION_LINE = re.compile(
    r"^(?:Caused by: )?"
    r"((?:[A-Za-z_$][\w$]*\.)*([A-Z][\w$]*(?:Error|Exception|Exhausted|Mismatch)))"
    r"(?::[ ]?(.*))?$",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Failure:
    cause: str
    exception: str  # the class name, e.g. RetriesExhausted or java.lang.OutOfMemoryError
    message: str | None  # only for the pipeline's own exceptions, masked


def masked(text: str) -> str:
    """`text` with hex runs of 16+ digits masked, cut to MESSAGE_CHARS."""
    cleaned = HEX_RUN.sub("<hex>", text.strip())
    return cleaned if len(cleaned) <= MESSAGE_CHARS else cleaned[: MESSAGE_CHARS - 1] + "…"


def failure_of(error_text: str | None, error_class: str | None = None) -> Failure:
    """The failure an exception's text (Spark's or Python's) describes.

    The innermost known exception wins (a Python traceback's own line comes after the
    Java wrappers); `error_class` (Spark's, e.g. FAILED_READ_FILE) names an Other cause.
    """
    lines = [
        (match.group(1), match.group(2), match.group(3))
        for match in EXCEPTION_LINE.finditer(error_text or "")
    ]
    for cause, names in CAUSES:
        for qualified, short, message in reversed(lines):
            if short in names:
                own = short in OWN_EXCEPTIONS and message
                return Failure(cause, qualified, masked(message) if own else None)
    if lines:
        return Failure(OTHER_CAUSE, error_class or lines[-1][0], None)
    return Failure(OTHER_CAUSE, error_class or "unknown", None)


def failure_record(failure: Failure, now: datetime) -> dict:
    """The `failure` object of latest.json."""
    return {**asdict(failure), "at": contracts.iso_utc(now)}


def failed_status(failure: Failure, now: datetime, error_class: str | None = None) -> dict:
    """What a failure changes in latest.json: the state, and the record kept across restarts too."""
    record = failure_record(failure, now)
    return {
        "state": "failed",
        "error_class": error_class or failure.exception,
        "failure": record,
        "last_failure": record,
    }


STREAM_FAILED_METRIC = "StreamFailed"
CAUSE_DIMENSION = "Cause"


def failure_emf(failure: Failure, now: datetime, namespace: str, stage: str) -> dict:
    """EMF document: StreamFailed = 1 by Stage (what the alarm watches) and by Stage and Cause (why)."""
    stage_dimension = contracts.STREAM_METRIC_DIMENSION
    return {
        "_aws": {
            "Timestamp": int(now.timestamp() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [[stage_dimension], [stage_dimension, CAUSE_DIMENSION]],
                    "Metrics": [{"Name": STREAM_FAILED_METRIC, "Unit": "Count"}],
                }
            ],
        },
        stage_dimension: stage,
        CAUSE_DIMENSION: failure.cause,
        "Exception": failure.exception,
        STREAM_FAILED_METRIC: 1,
    }
