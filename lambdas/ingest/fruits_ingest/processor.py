"""The one processing function of an upload, shared by the Lambda and local mode.

Order of checks (the first failure is the recorded reason): key, identity
(behind the upload API), size (from a HEAD, before any download), metadata,
then the decoded image. A rejection is a
normal outcome (a quarantine record). An upload that is gone (deleted, expired,
or overwritten since its event) is skipped: no record, a counted outcome, never
a retry. Other storage failures propagate so the caller retries the message. The
clean image is written before the manifest, so a manifest never points to a
missing image.

Manifests are stored per batch (manifest_group): the caller passes the batch's group and
flushes it once every upload of the batch is processed; without one, the upload is a batch
of one (its manifest under its own key). A redelivered upload whose clean image names a
stored manifest group was ingested already and is skipped.

Behind the upload API each issued key is one upload, so the image id comes from the key
alone and the clean image is written with a conditional PUT (`If-None-Match: *`): a
presigned POST sent again finds its clean image there and is skipped (`upload_reused`),
without a listing or any other extra request.

An erasure may land while an upload is in flight. The tombstone is checked once, before
the download, under every held key version; an upload past that check when the tombstone
lands is removed by the erasure's second pass, which `fruits subject erase` runs after a
settle period longer than this function's timeout (docs/gdpr.md). A skip for an erased
subject also removes what an earlier, interrupted try of the same upload left.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fruits_core import contracts
from fruits_core.clock import utc_now
from fruits_core.lake_uris import join_uri
from fruits_core.tombstones import refuses_uploads
from fruits_ingest.anonymize import geohash, subject_id, truncate_to_hour
from fruits_ingest.config import IngestConfig
from fruits_ingest.events import ObjectRef
from fruits_ingest.identity import subject_from_key
from fruits_ingest.imaging import CleanImage, ImageRejected, normalize_image
from fruits_ingest.manifest_group import ManifestGroup
from fruits_ingest.metadata import InvalidMetadata, UploadMetadata, parse_upload_metadata
from fruits_ingest.pseudonym_key import PseudonymKey
from fruits_ingest.storage import (
    ObjectChanged,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    UnreadableMetadata,
)

# A child of the Powertools logger "ingest": JSON lines in Lambda, plain logging in local mode.
logger = logging.getLogger("ingest.processor")
JSON_CONTENT_TYPE = "application/json"
_TOMBSTONE_MAX_BYTES = 4096
_ACCEPTED_SUFFIXES_TEXT = ", ".join(contracts.ACCEPTED_UPLOAD_SUFFIXES)

Status = Literal["accepted", "quarantined", "skipped"]


@dataclass(frozen=True)
class IngestOutcome:
    status: Status
    image_id: str
    reason: str | None
    dt: str
    manifest_uri: str | None
    # The label metadata named no fruit of the vocabulary and was dropped (counted by the caller).
    label_dropped: bool = False


class _Skipped(Exception):
    def __init__(self, reason: contracts.SkipReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


class _Rejected(Exception):
    def __init__(self, reason: contracts.QuarantineReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def process_upload(
    ref: ObjectRef,
    config: IngestConfig,
    store: ObjectStore,
    pseudonym_key: PseudonymKey,
    clock: Callable[[], datetime] = utc_now,
    group: ManifestGroup | None = None,
    owner: str = "",
    redelivered: bool = False,
) -> IngestOutcome:
    """Validate, anonymize and store one upload; the same object version always yields the same keys.

    With `group`, the manifest joins the batch's group (the caller flushes it); without, it is
    stored at once as a batch of one and the upload deleted. `owner` names the message that
    carries the upload; `redelivered` says an earlier attempt may have stored it already.
    """
    if group is None:
        single = ManifestGroup.for_refs([ref])
        outcome = process_upload(ref, config, store, pseudonym_key, clock, single, owner, redelivered)
        single.flush(store, config.lake_uri)
        return outcome
    started = time.perf_counter()
    image_id = upload_image_id(ref, config.identity_from_key)
    dt = contracts.partition_date(ref.event_time)
    # Who uploaded, once known: the key's subject behind the upload API, else the `user-id` metadata.
    person: str | None = None
    # Whether an earlier attempt of this very upload stored its clean image (then it is rewritten).
    rewrite = False
    try:
        if config.uploads_bucket and ref.bucket != config.uploads_bucket:
            raise _Skipped(contracts.SkipReason.FOREIGN_BUCKET)
        _check_key(ref)
        if redelivered:
            rewrite = _earlier_attempt(ref, image_id, dt, config, store, group)
        person = _subject(ref, config)
        _skip_if_erased(person, pseudonym_key, config, store, clock())
        upload_bytes, metadata = _fetch_valid_upload(ref, config, store, clock())
        if not config.identity_from_key:
            person = metadata.user_id
            _skip_if_erased(person, pseudonym_key, config, store, clock())
        clean = _normalize(upload_bytes, config.max_image_pixels)
    except _Skipped as skip:
        return _skipped(skip, store, config, ref, image_id, dt, started, group)
    except _Rejected as rejection:
        _write_quarantine(store, config, image_id, dt, ref, rejection, clock(), person, pseudonym_key)
        group.done_with(ref)
        logger.info(
            "upload quarantined",
            extra={
                "image_id": image_id,
                "reason": rejection.reason.value,
                "detail": rejection.detail,
                "duration_ms": _elapsed_ms(started),
            },
        )
        return IngestOutcome("quarantined", image_id, rejection.reason.value, dt, None)

    image_uri = join_uri(config.lake_uri, contracts.clean_image_key(dt, image_id))
    # A shared group's key is recorded with the image: a redelivery finds out whether it was stored;
    # behind the upload API so is the upload's version: a redelivered reused POST finds out it is one.
    image_metadata: dict[str, str] = {}
    if group.is_shared:
        image_metadata[contracts.MANIFEST_GROUP_METADATA] = group.key
    if config.identity_from_key:
        image_metadata[contracts.UPLOAD_VERSION_METADATA] = ref.version
    try:
        store.put(
            image_uri,
            clean.jpeg,
            contracts.CLEAN_IMAGE_CONTENT_TYPE,
            metadata=image_metadata or None,
            if_absent=config.identity_from_key and not rewrite,
        )
    except ObjectExists:
        # Another upload through the same issued key got here first: this one is a reused POST.
        group.done_with(ref)
        return _skipped(
            _Skipped(contracts.SkipReason.UPLOAD_REUSED), store, config, ref, image_id, dt, started
        )
    manifest = manifest_record(
        image_id,
        image_uri,
        clean,
        metadata,
        person,
        pseudonym_key,
        ref.event_time,
        clock(),
        dt,
    )
    manifest_uri = join_uri(config.lake_uri, group.key)
    group.add(manifest, owner)
    group.done_with(ref)
    logger.info(
        "upload accepted",
        extra={
            "image_id": image_id,
            "bytes_in": len(upload_bytes),
            "bytes_out": len(clean.jpeg),
            "width": clean.width,
            "height": clean.height,
            "source_format": clean.source_format,
            "duration_ms": _elapsed_ms(started),
        },
    )
    return IngestOutcome("accepted", image_id, None, dt, manifest_uri, label_dropped=metadata.label_unknown)


def manifest_record(
    image_id: str,
    image_uri: str,
    clean: CleanImage,
    metadata: UploadMetadata,
    person: str | None,
    pseudonym_key: PseudonymKey,
    uploaded_at: datetime,
    ingested_at: datetime,
    dt: str,
) -> dict[str, Any]:
    """Manifest v1, in contract field order; only anonymized values derived from the metadata.

    `person` is who uploaded (the key's subject behind the upload API, else the `user-id` metadata);
    only its keyed pseudonym is kept. `uploaded_at` is truncated to the hour like `captured_hour`: to
    the millisecond, the upload time would single out the person (and undo the capture-time
    truncation for a photo sent at once).
    """
    has_position = metadata.lat is not None and metadata.lon is not None
    values = {
        "schema_version": contracts.MANIFEST_SCHEMA_VERSION,
        "image_id": image_id,
        "image_uri": image_uri,
        "content_sha256": hashlib.sha256(clean.jpeg).hexdigest(),
        "width": clean.width,
        "height": clean.height,
        "format": clean.source_format,
        "bytes": len(clean.jpeg),
        "label": metadata.label,
        "subject_id": subject_id(pseudonym_key.value, person) if person else None,
        "region": geohash(metadata.lat, metadata.lon) if has_position else None,
        "captured_hour": (
            contracts.iso_utc(truncate_to_hour(metadata.captured_at)) if metadata.captured_at else None
        ),
        "uploaded_at": contracts.iso_utc(truncate_to_hour(uploaded_at)),
        "ingested_at": contracts.iso_utc(ingested_at),
        "app_version": metadata.app_version,
        "dt": dt,
        "key_version": pseudonym_key.version if person else None,
    }
    return {name: values[name] for name in contracts.field_names(contracts.MANIFEST_FIELDS)}


def quarantine_record(
    image_id: str,
    reason: contracts.QuarantineReason,
    detail: str,
    uploaded_at: datetime,
    rejected_at: datetime,
    dt: str,
    person: str | None = None,
    pseudonym_key: PseudonymKey | None = None,
) -> dict[str, Any]:
    """Quarantine record v2: the uploader's pseudonym (when known) lets an erasure find the record."""
    pseudonym = subject_id(pseudonym_key.value, person) if person and pseudonym_key else None
    values = {
        "schema_version": contracts.QUARANTINE_SCHEMA_VERSION,
        "image_id": image_id,
        "reason": reason.value,
        "detail": detail,
        "uploaded_at": contracts.iso_utc(truncate_to_hour(uploaded_at)),
        "rejected_at": contracts.iso_utc(rejected_at),
        "dt": dt,
        "subject_id": pseudonym,
        "key_version": pseudonym_key.version if pseudonym and pseudonym_key else None,
    }
    return {name: values[name] for name in contracts.field_names(contracts.QUARANTINE_FIELDS)}


def is_accepted_key(key: str) -> bool:
    return key.startswith(contracts.UPLOADS_PREFIX) and key.lower().endswith(
        contracts.ACCEPTED_UPLOAD_SUFFIXES
    )


def _check_key(ref: ObjectRef) -> None:
    if not is_accepted_key(ref.key):
        raise _Rejected(
            contracts.QuarantineReason.UNSUPPORTED_KEY,
            f"key is not under {contracts.UPLOADS_PREFIX} with a suffix in {_ACCEPTED_SUFFIXES_TEXT}",
        )


def _subject(ref: ObjectRef, config: IngestConfig) -> str | None:
    """The key's subject when identity must come from the key (quarantined without one), else None."""
    if not config.identity_from_key:
        return None
    subject = subject_from_key(ref.key)
    if subject is None:
        raise _Rejected(
            contracts.QuarantineReason.NO_IDENTITY,
            f"key is not {contracts.UPLOADS_PREFIX}<subject>/<name> as the upload API hands it out",
        )
    return subject


def _skip_if_erased(
    person: str | None, pseudonym_key: PseudonymKey, config: IngestConfig, store: ObjectStore, now: datetime
) -> None:
    """Drop an upload of a subject erased less than the grace period ago (a live tombstone).

    The tombstone is looked up under every key version held (one GET each): an erasure
    before a key rotation wrote it under the older pseudonyms. Dropped without any record:
    a quarantine record would store a new trace of the very person who asked to be
    forgotten; the raw upload expires with the uploads bucket.
    """
    if not person:
        return
    for key_value in pseudonym_key.held:
        key = contracts.tombstone_key(subject_id(key_value, person))
        try:
            tombstone = store.get(join_uri(config.lake_uri, key), max_bytes=_TOMBSTONE_MAX_BYTES)
        except ObjectNotFound:
            continue
        if refuses_uploads(tombstone, now, config.erasure_grace_days):
            raise _Skipped(contracts.SkipReason.SUBJECT_ERASED)


def _skipped(
    skip: _Skipped,
    store: ObjectStore,
    config: IngestConfig,
    ref: ObjectRef,
    image_id: str,
    dt: str,
    started: float,
    group: ManifestGroup | None = None,
) -> IngestOutcome:
    """Log and count a skip; for an erased subject, remove anything of this upload from the lake.

    That purge runs on this rare path only: what an interrupted earlier try of the upload left.
    """
    if skip.reason is contracts.SkipReason.SUBJECT_ERASED:
        for key in (
            contracts.clean_image_key(dt, image_id),
            contracts.manifest_key(dt, image_id),
            contracts.quarantine_key(dt, image_id),
        ):
            store.purge(join_uri(config.lake_uri, key))
        if group is not None:
            group.done_with(ref)
    logger.info(
        "upload skipped",
        extra={"image_id": image_id, "reason": skip.reason.value, "duration_ms": _elapsed_ms(started)},
    )
    return IngestOutcome("skipped", image_id, skip.reason.value, dt, None)


def _fetch_valid_upload(
    ref: ObjectRef, config: IngestConfig, store: ObjectStore, now: datetime
) -> tuple[bytes, UploadMetadata]:
    try:
        info = _head_announced_version(ref, store)
    except UnreadableMetadata as error:
        raise _Rejected(contracts.QuarantineReason.INVALID_METADATA, str(error)) from None
    _check_size(info.size, config.max_upload_bytes)
    metadata = parse_upload_metadata(info.metadata, now, config.label_vocabulary)
    if isinstance(metadata, InvalidMetadata):
        raise _Rejected(contracts.QuarantineReason.INVALID_METADATA, metadata.detail)
    # Unversioned bucket: read only the content the event announced (the ETag the HEAD saw).
    expected_etag = None if ref.version_id else info.etag
    try:
        data = store.get(
            ref.uri, max_bytes=config.max_upload_bytes, version_id=ref.version_id, etag=expected_etag
        )
    except ObjectNotFound:
        raise _Skipped(contracts.SkipReason.UPLOAD_MISSING) from None
    except ObjectChanged:
        raise _Skipped(contracts.SkipReason.UPLOAD_SUPERSEDED) from None
    _check_size(len(data), config.max_upload_bytes)
    return data, metadata


def _head_announced_version(ref: ObjectRef, store: ObjectStore) -> ObjectInfo:
    """HEAD of the version the event announced, or _Skipped when it should not be ingested.

    The current object is read first: a delete marker there means the user deleted the photo
    (versioned bucket), and an ETag other than the event's means it was overwritten since
    (unversioned bucket: the newer upload has its own event, so processing this one would
    store the newer content twice).
    """
    try:
        current = store.head(ref.uri)
    except ObjectNotFound:
        reason = (
            contracts.SkipReason.UPLOAD_DELETED if ref.version_id else contracts.SkipReason.UPLOAD_MISSING
        )
        raise _Skipped(reason) from None
    if ref.version_id is None:
        if ref.etag and current.etag and current.etag != ref.etag:
            raise _Skipped(contracts.SkipReason.UPLOAD_SUPERSEDED)
        return current
    if current.version_id == ref.version_id:
        return current
    try:
        return store.head(ref.uri, version_id=ref.version_id)
    except ObjectNotFound:
        raise _Skipped(contracts.SkipReason.UPLOAD_MISSING) from None


def _earlier_attempt(
    ref: ObjectRef, image_id: str, dt: str, config: IngestConfig, store: ObjectStore, group: ManifestGroup
) -> bool:
    """On redelivery only (a few HEADs): skip an upload an earlier attempt stored, else say whether
    that attempt left its clean image (rewritten without the conditional write).

    The clean image names the upload version it came from and the manifest object, which exists
    in manifests/ or where the stream's cleanSource archived it. A clean image of another version
    of the same issued key means this upload is a reused presigned POST.
    """
    try:
        image = store.head(join_uri(config.lake_uri, contracts.clean_image_key(dt, image_id)))
    except ObjectNotFound:
        return False
    source = image.metadata.get(contracts.UPLOAD_VERSION_METADATA)
    if source is not None and source != ref.version:
        group.done_with(ref)
        raise _Skipped(contracts.SkipReason.UPLOAD_REUSED)
    named = image.metadata.get(contracts.MANIFEST_GROUP_METADATA)
    group_key = named or contracts.manifest_key(dt, image_id)
    group_uri = join_uri(config.lake_uri, group_key)
    archive_dir = join_uri(config.lake_uri, contracts.MANIFESTS_ARCHIVE_PREFIX)
    for uri in (group_uri, contracts.archived_uri(archive_dir, group_uri)):
        try:
            store.head(uri)
        except ObjectNotFound:
            continue
        group.done_with(ref)
        raise _Skipped(contracts.SkipReason.ALREADY_INGESTED)
    return True


def upload_image_id(ref: ObjectRef, identity_from_key: bool) -> str:
    """The upload's image id. Behind the upload API an issued key is one upload, whatever version
    a reused POST adds, so the key alone names it; elsewhere each version is its own upload."""
    if identity_from_key:
        return contracts.image_id(ref.bucket, ref.key, "")
    return ref.image_id


def _check_size(size: int, max_bytes: int) -> None:
    if size == 0:
        raise _Rejected(contracts.QuarantineReason.EMPTY_FILE, "the upload has zero bytes")
    if size > max_bytes:
        raise _Rejected(
            contracts.QuarantineReason.TOO_LARGE, f"the upload is over the {max_bytes} byte limit"
        )


def _normalize(data: bytes, max_image_pixels: int) -> CleanImage:
    try:
        return normalize_image(data, max_image_pixels)
    except ImageRejected as rejection:
        raise _Rejected(rejection.reason, rejection.detail) from None


def _write_quarantine(
    store: ObjectStore,
    config: IngestConfig,
    image_id: str,
    dt: str,
    ref: ObjectRef,
    rejection: _Rejected,
    rejected_at: datetime,
    person: str | None,
    pseudonym_key: PseudonymKey,
) -> None:
    record = quarantine_record(
        image_id, rejection.reason, rejection.detail, ref.event_time, rejected_at, dt, person, pseudonym_key
    )
    uri = join_uri(config.lake_uri, contracts.quarantine_key(dt, image_id))
    store.put(uri, _json_bytes(record), JSON_CONTENT_TYPE)


def _json_bytes(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode("utf-8")


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
