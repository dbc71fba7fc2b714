"""IngestFunction: Powertools wiring around `fruits_ingest.processor.process_upload`.

Accepts an SQS batch of S3 notifications (partial batch failures reported, so
only the failed messages return to the queue and, after the redrive limit, to
the DLQ) or a direct S3 event (`sam local invoke -e events/s3-put.json`).
Settings are read and validated here, at cold start: a bad environment fails
the INIT phase with a message naming the variable.

A record is only started while at least RECORD_TIME_BUDGET_MS of the invocation
is left: the ones not started fail alone (back to the queue) instead of a
timeout failing the whole batch. X-Ray records only this module's own
subsegments and annotations (image_id, status): the automatic botocore and HTTP
instrumentation is off, because it would put the object key, which holds the
file name the phone chose, into every S3 subsegment.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from fruits_ingest.config import ConfigError, load_config
from fruits_ingest.events import (
    ObjectRef,
    PoisonMessage,
    UnsupportedEvent,
    classify_event,
    refs_from_s3_event,
    refs_from_sqs_body,
)
from fruits_ingest.imaging import install_pillow_guards
from fruits_ingest.manifest_group import ManifestGroup
from fruits_ingest.processor import IngestOutcome, process_upload
from fruits_ingest.pseudonym_key import PseudonymKeySource
from fruits_ingest.storage import FileObjectStore, ObjectNotFound, RoutingStore, S3ObjectStore, StorageError

SERVICE = "ingest"
METRICS_NAMESPACE = "Fruits/Ingest"
# Short timeouts: a stuck call should fail the message (SQS redelivers it), not the whole batch's time.
# Attempts and retry mode come from AWS_MAX_ATTEMPTS / AWS_RETRY_MODE when set.
_BOTO_CONFIG = Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard"})


class NotStarted(Exception):
    """Too little invocation time left to process the record safely: it goes back to the queue."""


SANITIZED_ERRORS = (StorageError, ObjectNotFound, PoisonMessage, UnsupportedEvent, ConfigError, NotStarted)

logger = Logger(service=SERVICE)
# auto_patch=False: botocore's automatic subsegments would record each object key and URL.
tracer = Tracer(service=SERVICE, auto_patch=False)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE)

CONFIG = load_config(os.environ)
install_pillow_guards(CONFIG.max_image_pixels)
S3_CLIENT = boto3.client("s3", config=_BOTO_CONFIG)
STORE = RoutingStore(s3=S3ObjectStore(S3_CLIENT), file=FileObjectStore())
PSEUDONYM_KEY = PseudonymKeySource(CONFIG, lambda: boto3.client("ssm", config=_BOTO_CONFIG))
batch_processor = BatchProcessor(event_type=EventType.SQS, model=SqsRecordModel)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Fetch the key before touching any record: a misconfiguration fails the invocation loudly
    # and leaves every message in the queue, rather than quarantining or half-processing them.
    PSEUDONYM_KEY.get()
    if classify_event(event) == "sqs":
        return _handle_sqs_batch(event, context)
    return _handle_direct_s3_event(event)


def _handle_sqs_batch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The batch's uploads one message at a time, then their manifests as one object (manifest_group)."""
    refs = _announced_refs(event["Records"])
    group = ManifestGroup.for_refs(refs) if refs else None

    def record_handler(record: SqsRecordModel, lambda_context: LambdaContext) -> None:
        sqs_record_handler(record, lambda_context, group)

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=batch_processor, context=context
    )
    if group is not None:
        _flush(group, response)
    logger.info(
        "batch done",
        extra={"records": len(event["Records"]), "failed": len(response.get("batchItemFailures", []))},
    )
    return response


def _announced_refs(records: list[dict[str, Any]]) -> list[ObjectRef]:
    """Every upload the batch announces (a message that cannot be read fails later, in its handler)."""
    refs: list[ObjectRef] = []
    for record in records:
        try:
            refs.extend(refs_from_sqs_body(record.get("body") or ""))
        except (PoisonMessage, UnsupportedEvent, ValueError):
            continue
    return refs


def _flush(group: ManifestGroup, response: dict[str, Any]) -> None:
    """Store the batch's manifests; if that fails, every message with a manifest in it is retried."""
    try:
        result = group.flush(STORE, CONFIG.lake_uri)
    except StorageError as error:
        metrics.add_metric(name="Failed", unit=MetricUnit.Count, value=len(set(group.owners)))
        logger.warning(
            "manifest group not stored; its messages will be redelivered", extra={"detail": str(error)}
        )
        failed = {item["itemIdentifier"] for item in response.setdefault("batchItemFailures", [])}
        response["batchItemFailures"].extend(
            {"itemIdentifier": owner} for owner in dict.fromkeys(group.owners) if owner not in failed
        )
        return
    metrics.add_metric(name="UploadsDeleted", unit=MetricUnit.Count, value=result.uploads_deleted)
    if result.delete_failures:
        metrics.add_metric(name="UploadDeleteFailures", unit=MetricUnit.Count, value=result.delete_failures)


def sqs_record_handler(
    record: SqsRecordModel, lambda_context: LambdaContext, group: ManifestGroup | None = None
) -> None:
    """One SQS message; any exception puts its messageId in batchItemFailures (retry, then DLQ)."""
    logger.set_correlation_id(record.messageId)
    redelivered = int(record.attributes.ApproximateReceiveCount) > 1
    with _counting_failures():
        if lambda_context.get_remaining_time_in_millis() < CONFIG.record_time_budget_ms:
            metrics.add_metric(name="NotStarted", unit=MetricUnit.Count, value=1)
            raise NotStarted(f"less than {CONFIG.record_time_budget_ms} ms left in the invocation")
        refs = refs_from_sqs_body(record.body)
        for ref in refs:
            ingest(ref, group, record.messageId, redelivered)
    if not refs:
        metrics.add_metric(name="IgnoredMessages", unit=MetricUnit.Count, value=1)
        logger.info("message without ObjectCreated record ignored (s3:TestEvent or other event type)")


@tracer.capture_method(capture_response=False)
def ingest(
    ref: ObjectRef, group: ManifestGroup | None = None, owner: str = "", redelivered: bool = False
) -> IngestOutcome:
    started = time.perf_counter()
    outcome = process_upload(
        ref, CONFIG, STORE, PSEUDONYM_KEY.get(), group=group, owner=owner, redelivered=redelivered
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    tracer.put_annotation("image_id", outcome.image_id)
    tracer.put_annotation("status", outcome.status)
    _emit_outcome_metrics(outcome, elapsed_ms)
    return outcome


def _handle_direct_s3_event(event: dict[str, Any]) -> dict[str, Any]:
    """A direct S3 event has no partial-failure protocol: an exception fails the invocation (retried)."""
    request_id = (event["Records"][0].get("responseElements") or {}).get("x-amz-request-id")
    if request_id:
        logger.set_correlation_id(request_id)
    with _counting_failures():
        outcomes = [ingest(ref) for ref in refs_from_s3_event(event)]
    return {
        "accepted": sum(outcome.status == "accepted" for outcome in outcomes),
        "quarantined": sum(outcome.status == "quarantined" for outcome in outcomes),
        "skipped": sum(outcome.status == "skipped" for outcome in outcomes),
        "image_ids": [outcome.image_id for outcome in outcomes],
    }


@contextmanager
def _counting_failures() -> Iterator[None]:
    """Count and log a failed message or event, then let the error travel on (it means: retry)."""
    try:
        yield
    except Exception as error:
        metrics.add_metric(name="Failed", unit=MetricUnit.Count, value=1)
        logger.warning(
            "processing failed; the message will be redelivered",
            extra={"error": type(error).__name__, "detail": _safe_detail(error)},
        )
        raise


def _safe_detail(error: Exception) -> str | None:
    """Our own exceptions carry no key or personal value by construction; others may, so omit them."""
    return str(error) if isinstance(error, SANITIZED_ERRORS) else None


_STATUS_METRICS = {"accepted": "Accepted", "quarantined": "Quarantined", "skipped": "Skipped"}


def _emit_outcome_metrics(outcome: IngestOutcome, elapsed_ms: float) -> None:
    metrics.add_metric(name="ProcessingTime", unit=MetricUnit.Milliseconds, value=elapsed_ms)
    if outcome.label_dropped:
        metrics.add_metric(name="LabelsDropped", unit=MetricUnit.Count, value=1)
    name = _STATUS_METRICS[outcome.status]
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    if outcome.status == "accepted":
        return
    # A second metric of the same name, per reason: dashboards split on it, alarms use the total.
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=1,
        namespace=METRICS_NAMESPACE,
        default_dimensions={"service": SERVICE},
    ) as metric:
        metric.add_dimension(name="Reason", value=outcome.reason or "unknown")
