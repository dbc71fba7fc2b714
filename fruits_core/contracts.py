"""The pipeline's contracts, defined once (docs/design.md).

Both halves import this module: the ingest Lambda writes what it describes and
the streaming job reads it. It is stdlib-only on purpose, so the Lambda package
stays slim; the streaming job turns the field lists into Spark schemas.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from enum import StrEnum

from fruits_core.lake_uris import is_s3, local_path, split_s3

MANIFEST_SCHEMA_VERSION = 1
# v2: subject_id and key_version appended (nullable), so an erasure or export finds the subject's records.
QUARANTINE_SCHEMA_VERSION = 2

# --- Key layout -------------------------------------------------------------

UPLOADS_PREFIX = "uploads/"
CLEAN_PREFIX = "clean/"
MANIFESTS_PREFIX = "manifests/"
QUARANTINE_PREFIX = "quarantine/"
FEATURES_PREFIX = "features/"
ERRORS_PREFIX = "errors/"
CHECKPOINTS_PREFIX = "checkpoints/"
STATUS_PREFIX = "status/"
MODELS_PREFIX = "models/"
CODE_PREFIX = "code/"
EMR_LOGS_PREFIX = "emr-logs/"
ARCHIVE_PREFIX = "archive/"
# The local lake's table catalog (SQLite); on AWS the Glue catalog holds the same tables.
CATALOG_PREFIX = "catalog/"
CONTROL_PREFIX = "control/"
# `fruits subject erase`: one audit record per erasure (no personal data) and one tombstone per
# erased pseudonym, which the ingest checks before storing an upload (docs/gdpr.md).
AUDIT_PREFIX = "audit/"
TOMBSTONES_PREFIX = "tombstones/"
# Where the stream's cleanSource moves processed manifests: outside manifests/ on purpose.
MANIFESTS_ARCHIVE_PREFIX = f"{ARCHIVE_PREFIX}manifests/"
# The featurizer artifact's suffix names the runtime that runs it (see streaming_job.featurizer.model).
FEATURIZER_SUFFIXES = {"litert": ".tflite", "keras": ".keras"}
DEFAULT_RUNTIME = "litert"


def featurizer_key(runtime: str = DEFAULT_RUNTIME) -> str:
    return f"{MODELS_PREFIX}featurizer{FEATURIZER_SUFFIXES[runtime]}"


def featurizer_runtime(name: str) -> str | None:
    """The runtime of a featurizer artifact from its file name's suffix (None: not an artifact)."""
    return next((runtime for runtime, suffix in FEATURIZER_SUFFIXES.items() if name.endswith(suffix)), None)


# Every top-level prefix of the lake bucket (the uploads bucket holds UPLOADS_PREFIX only): each has a
# lifecycle rule in template.yaml (tests/infra) and a row in docs/gdpr.md's retention table.
LAKE_PREFIXES = (
    CLEAN_PREFIX,
    MANIFESTS_PREFIX,
    QUARANTINE_PREFIX,
    FEATURES_PREFIX,
    ERRORS_PREFIX,
    CHECKPOINTS_PREFIX,
    STATUS_PREFIX,
    MODELS_PREFIX,
    CODE_PREFIX,
    EMR_LOGS_PREFIX,
    ARCHIVE_PREFIX,
    CATALOG_PREFIX,
    CONTROL_PREFIX,
    AUDIT_PREFIX,
    TOMBSTONES_PREFIX,
)
# Prefixes whose current files must never expire by age: Iceberg table files (an expired data or
# metadata file corrupts the table), the local catalog, the stream's checkpoint, the running model
# and job code.
# Their lifecycle rules purge superseded versions only (docs/gdpr.md).
LIVE_STATE_PREFIXES = (
    FEATURES_PREFIX,
    ERRORS_PREFIX,
    CATALOG_PREFIX,
    CHECKPOINTS_PREFIX,
    MODELS_PREFIX,
    CODE_PREFIX,
)

FEATURIZER_KEY = featurizer_key()
PCA_KEY = f"{MODELS_PREFIX}pca"
# The app's on-device model (`fruits classifier export-app`): <prefix><classifier_version>/<files>, and the
# pointer to the current one, which the upload API's GET /model reads (docs/predictions.md).
APP_MODEL_PREFIX = f"{MODELS_PREFIX}app/"
APP_MODEL_LATEST_KEY = f"{APP_MODEL_PREFIX}latest.json"
# Written by `fruits deploy stop`: the running stream stops cleanly after its current micro-batch.
STOP_MARKER_KEY = f"{CONTROL_PREFIX}stop-stream"

ACCEPTED_UPLOAD_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
# What the upload API signs: content type -> the suffix of the key it hands out.
UPLOAD_CONTENT_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}
# Authenticated uploads live under uploads/<subject>/, the subject being the caller's Cognito `sub`.
SUBJECT_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# The Pillow decoders either half may open (ingest and the stream's preprocess): nothing else is reachable.
IMAGE_PILLOW_FORMATS = ("JPEG", "PNG", "WEBP")
# Decompression-bomb guard: images with more pixels are refused before decoding (both halves).
MAX_IMAGE_PIXELS = 40_000_000
CLEAN_IMAGE_FORMAT = "JPEG"
CLEAN_IMAGE_CONTENT_TYPE = "image/jpeg"
# Long side of a clean image at most: 9x the featurizer's largest input (224 px), and it bounds the
# ingest function's memory (large JPEGs are decoded at reduced scale).
CLEAN_IMAGE_MAX_SIDE_PX = 448


# What a `dt` partition value looks like (also what makes it safe inside a path).
DT_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def partition_date(moment: datetime) -> str:
    """The `dt` partition (UTC calendar day) of a moment."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def clean_image_key(dt: str, image_id: str) -> str:
    return f"{CLEAN_PREFIX}dt={dt}/{image_id}.jpg"


# An image id: 32 lowercase hex digits (see image_id below).
IMAGE_ID_PATTERN = r"^[0-9a-f]{32}$"


def clean_image_uri_pattern(lake_uri: str) -> str:
    """The regex body (no anchors) of every image_uri a manifest may name: `<lake>/clean/dt=<day>/<id>.jpg`.

    Exactly the key layout the ingest writes (clean_image_key), so a manifest
    cannot point the stream at any other object or file (no `..`, no encoding).
    """
    prefix = re.escape(f"{lake_uri.rstrip('/')}/{CLEAN_PREFIX}")
    # `%3D`: a local URI made by Path.as_uri percent-encodes the `=` of `dt=` (and is read the same).
    return prefix + r"dt(=|%3D)[0-9]{4}-[0-9]{2}-[0-9]{2}/[0-9a-f]{32}\.jpg"


def is_clean_image_uri(lake_uri: str, uri: str) -> bool:
    return re.fullmatch(clean_image_uri_pattern(lake_uri), uri) is not None


def is_calendar_date(text: str) -> bool:
    """`text` is a real YYYY-MM-DD calendar day (`2024-13-45` and `2023-02-29` are not)."""
    if re.fullmatch(DT_PATTERN, text) is None:
        return False
    try:
        datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def manifest_key(dt: str, image_id: str) -> str:
    return f"{MANIFESTS_PREFIX}dt={dt}/{image_id}.json"


# A batch's manifests travel as one JSON-lines object (one manifest per line): one PUT, one GET and one
# cleanSource action per batch instead of per image. A batch of one keeps the image's own manifest_key.
MANIFEST_GROUP_SUFFIX = ".jsonl"
MANIFEST_FILE_SUFFIXES = (".json", MANIFEST_GROUP_SUFFIX)
# The clean image's S3 user metadata naming its manifest group: a redelivered upload finds out whether
# an earlier attempt stored its manifest (the group exists) without any per-image manifest object.
MANIFEST_GROUP_METADATA = "manifest-group"
# Behind the upload API, the clean image's S3 user metadata naming the upload version it came from
# (its id is the issued key's alone): a redelivered reused presigned POST finds out it is one.
UPLOAD_VERSION_METADATA = "upload-version"
# How long `fruits subject erase` waits, between its two passes, for the ingests already past their
# one tombstone check: more than the ingest function's timeout (template.yaml, which bounds the
# batch's manifest flush too; tests/infra checks the order) plus a margin.
ERASURE_SETTLE_SECONDS = 180


def manifest_group_key(dt: str, image_ids: list[str]) -> str:
    """The one manifest object of a batch of uploads, named by its image ids (deterministic).

    The same batch always gets the same key, so a retried batch overwrites its object instead of
    adding a second copy of its lines.
    """
    ids = sorted(set(image_ids))
    if not ids:
        raise ValueError("a manifest group needs at least one image id")
    if len(ids) == 1:
        return manifest_key(dt, ids[0])
    digest = hashlib.sha256("\n".join(ids).encode("ascii")).hexdigest()[:32]
    return f"{MANIFESTS_PREFIX}dt={dt}/{digest}{MANIFEST_GROUP_SUFFIX}"


def archived_uri(archive_dir_uri: str, file_uri: str) -> str:
    """Where Spark's cleanSource archiver puts a file: the archive directory followed by the file's path."""
    path = "/" + split_s3(file_uri)[1] if is_s3(file_uri) else local_path(file_uri).as_posix()
    return archive_dir_uri.rstrip("/") + path


def quarantine_key(dt: str, image_id: str) -> str:
    return f"{QUARANTINE_PREFIX}dt={dt}/{image_id}.json"


def tombstone_key(pseudonym: str) -> str:
    """Where the ingest looks for an erased subject's tombstone (the pseudonym is 64 hex digits)."""
    if re.fullmatch(r"[0-9a-f]{64}", pseudonym) is None:
        raise ValueError("a tombstone is named by a subject pseudonym (64 hex digits)")
    return f"{TOMBSTONES_PREFIX}{pseudonym}.json"


def erasure_audit_key(dt: str, request_id: str) -> str:
    return f"{AUDIT_PREFIX}erasure/dt={dt}/{request_id}.json"


def upload_prefix(subject: str) -> str:
    """Where the upload API lets one authenticated caller write: `uploads/<subject>/`."""
    return f"{UPLOADS_PREFIX}{subject}/"


# --- Identity ---------------------------------------------------------------


def image_id(bucket: str, key: str, version: str) -> str:
    """Deterministic id of one uploaded object version: re-deliveries map to the same keys.

    `key` is the decoded object key; `version` is the S3 version id when the
    bucket is versioned, otherwise the ETag (quotes stripped).
    """
    unquoted_version = version.strip('"')
    token = f"{bucket}/{key}#{unquoted_version}"
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:32]


def iso_utc(moment: datetime) -> str:
    """ISO 8601 UTC string with a `Z` suffix and millisecond precision, as in every record."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """The moment an ISO 8601 string names (the inverse of iso_utc; ValueError if it is not one)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- Upload metadata (x-amz-meta-*) ----------------------------------------

META_USER_ID = "user-id"
META_DEVICE_ID = "device-id"
META_CAPTURED_AT = "captured-at"
META_LAT = "lat"
META_LON = "lon"
META_LABEL = "label"
META_APP_VERSION = "app-version"
GEOHASH_PRECISION = 4

# --- Stream status log (under STATUS_PREFIX) and metrics ----------------------------
# <status>/latest.json for `fruits status`, one <status>/progress/<date>/<batchId>-<epoch ms>.json per batch.

STATUS_RECORD_VERSION = 1
STATUS_LATEST_NAME = "latest.json"
STATUS_PROGRESS_DIR = "progress"
# CloudWatch metric name -> (status record field, unit). The alarm templates key on these names.
STREAM_METRICS: tuple[tuple[str, str, str], ...] = (
    ("InputRows", "input_rows", "Count"),
    ("RowsPerSecond", "rows_per_second", "Count/Second"),
    ("BatchDurationMs", "batch_duration_ms", "Milliseconds"),
    ("LatencyP50Ms", "latency_p50_ms", "Milliseconds"),
    ("LatencyP95Ms", "latency_p95_ms", "Milliseconds"),
    ("ErrorRows", "error_rows", "Count"),
    ("BacklogManifests", "backlog_manifests", "Count"),
    ("ModelBuilds", "model_builds", "Count"),
    # Manifests of 0 bytes the source took: Spark's file scan skips empty files, so they yield no row.
    ("EmptyManifests", "empty_manifests", "Count"),
    # Sent by the driver's heartbeat thread on a timer, batch or not: its absence means the driver is gone.
    ("Heartbeat", "heartbeat", "Count"),
    # Age of the micro-batch being written (0 when idle): grows without bound while a batch hangs.
    ("BatchInFlightSeconds", "batch_in_flight_seconds", "Seconds"),
    # Per batch, while a classifier scores it: predictions under the confidence threshold, and labelled
    # uploads predicted as another fruit (drift, label noise; docs/predictions.md).
    ("LowConfidencePredictions", "low_confidence_rows", "Count"),
    ("LabelDisagreements", "label_disagreements", "Count"),
)
STREAM_METRIC_DIMENSION = "Stage"

# --- Manifest v1 --------------------------------------------------------------
# (name, type) with type one of: string, long, int, float, array<float>.
# A trailing "?" marks a nullable field.

MANIFEST_FIELDS: tuple[tuple[str, str], ...] = (
    ("schema_version", "int"),
    ("image_id", "string"),
    ("image_uri", "string"),
    ("content_sha256", "string"),
    ("width", "int"),
    ("height", "int"),
    ("format", "string"),
    ("bytes", "long"),
    ("label", "string?"),
    ("subject_id", "string?"),
    ("region", "string?"),
    ("captured_hour", "string?"),
    ("uploaded_at", "string"),
    ("ingested_at", "string"),
    ("app_version", "string?"),
    ("dt", "string"),
    # Version of the pseudonym key behind subject_id (SSM parameter version; null in local mode).
    # Appended last and nullable: manifests written before it still read with the same schema.
    ("key_version", "string?"),
)

# --- Quarantine record v1 ------------------------------------------------------


class QuarantineReason(StrEnum):
    """Stable reason codes: dashboards and alarms key on these strings."""

    NOT_AN_IMAGE = "not_an_image"
    UNSUPPORTED_FORMAT = "unsupported_format"
    TOO_LARGE = "too_large"
    TOO_MANY_PIXELS = "too_many_pixels"
    TOO_SMALL = "too_small"
    CORRUPT_IMAGE = "corrupt_image"
    INVALID_METADATA = "invalid_metadata"
    EMPTY_FILE = "empty_file"
    UNSUPPORTED_KEY = "unsupported_key"
    # A side over the JPEG encoder's limit (65,500 px): it could never be re-encoded.
    SIDE_TOO_LONG = "side_too_long"
    # More JPEG scans or PNG chunks than any camera or encoder writes: CPU bomb guard.
    TOO_COMPLEX = "too_complex"
    # Identity from the key is required and the key is not uploads/<subject>/<name>.
    NO_IDENTITY = "no_identity"


class SkipReason(StrEnum):
    """Why an announced upload was not processed and left no record (counted, never retried)."""

    UPLOAD_MISSING = "upload_missing"  # deleted or expired before processing
    UPLOAD_DELETED = "upload_deleted"  # versioned bucket: the user deleted it (delete marker is current)
    UPLOAD_SUPERSEDED = "upload_superseded"  # overwritten since the event; the newer one has its own event
    # The subject was erased (a live tombstone): no record at all, not even a quarantine record.
    SUBJECT_ERASED = "subject_erased"
    # A presigned POST sent again: another upload through an issued key (the first one stored is ingested).
    UPLOAD_REUSED = "upload_reused"
    # The event names another bucket than the uploads bucket (a misrouted or forged notification).
    FOREIGN_BUCKET = "foreign_bucket"
    # A redelivered upload whose clean image and manifest group an earlier attempt already stored.
    ALREADY_INGESTED = "already_ingested"


QUARANTINE_FIELDS: tuple[tuple[str, str], ...] = (
    ("schema_version", "int"),
    ("image_id", "string"),
    ("reason", "string"),
    ("detail", "string"),
    ("uploaded_at", "string"),
    ("rejected_at", "string"),
    ("dt", "string"),
    # v2: the uploader's pseudonym when the rejection came after the identity was known (else null).
    ("subject_id", "string?"),
    ("key_version", "string?"),
)

# --- Erasure tombstone and audit record (docs/gdpr.md) ---------------------------
TOMBSTONE_SCHEMA_VERSION = 1
ERASURE_AUDIT_SCHEMA_VERSION = 1
# How long the ingest refuses uploads of an erased subject (env ERASURE_GRACE_DAYS on the Lambda).
DEFAULT_ERASURE_GRACE_DAYS = 30

# --- Features and errors tables v2 (Iceberg, fruits_lake) ---------------------
# Types add "timestamp": a UTC instant (microseconds). Manifests keep their ISO strings; the stream
# converts them. v1 was Hive-style Parquet with string timestamps and a `dt` column.

FEATURES_SCHEMA_VERSION = 2

FEATURES_FIELDS: tuple[tuple[str, str], ...] = (
    ("image_id", "string"),
    # The HMAC pseudonym of the uploader: what subject-rights commands filter on.
    ("subject_id", "string?"),
    # Version of the pseudonym key behind subject_id (from the manifest): finds rows after a rotation.
    ("key_version", "string?"),
    ("label", "string?"),
    ("region", "string?"),
    ("captured_hour", "timestamp?"),
    ("uploaded_at", "timestamp"),
    ("ingested_at", "timestamp"),
    ("processed_at", "timestamp"),
    ("features", "array<float>"),
    ("pca_residual", "float"),
    ("model_version", "string"),
    ("pca_version", "string"),
    # Added by schema evolution (fruits_lake.migrations): optional, so rows written before read as null,
    # and null too while no classifier is published (docs/predictions.md).
    ("predicted_label", "string?"),
    ("prediction_confidence", "float?"),
    ("classifier_version", "string?"),
)

# Rows the stream could not featurize.
ERROR_FIELDS: tuple[tuple[str, str], ...] = (
    ("image_id", "string?"),
    ("image_uri", "string?"),
    ("reason", "string"),
    ("detail", "string"),
    ("processed_at", "timestamp"),
    # Added by schema evolution (fruits_lake.migrations): the failing manifest line's identity,
    # error_key(), so a re-read line without a usable image_id is not logged twice.
    ("error_key", "string?"),
)
# The manifest line of an error row: `dt=<day>/<file name>` (the path below manifests/, the same once
# archived or copied back for a replay), and the line's text. A 0-byte manifest is the empty line.
ERROR_KEY_HEX = 32


def manifest_relative_path(file_uri: str) -> str:
    """A manifest's folder and name (`dt=2024-05-01/<name>.jsonl`), however the URI spells `=`."""
    return "/".join(file_uri.replace("%3D", "=").replace("%3d", "=").rsplit("/", 2)[-2:])


def error_key(relative_path: str, line: str) -> str:
    """A failing manifest line's identity: 32 hex of SHA-256 over its relative path and its text.

    Deterministic, so a replayed batch or a re-read manifest gives the same key; one-way, so the
    key holds nothing of the line. The stream computes the same digest in Spark
    (streaming_job.query.stream.error_key_column), tested equal.
    """
    return hashlib.sha256(f"{relative_path}\n{line}".encode()).hexdigest()[:ERROR_KEY_HEX]


# Hidden partitioning: (partition field, transform, source column). No plain `dt` column: the day is
# derived from the timestamp, so the two can never disagree, and readers filtering on the timestamp
# prune partitions by themselves. An error row is dated when it was processed: its manifest's own
# timestamps may be missing or unreadable.
PARTITION_FIELD = "dt"
FEATURES_PARTITION: tuple[str, str, str] = (PARTITION_FIELD, "day", "uploaded_at")
ERRORS_PARTITION: tuple[str, str, str] = (PARTITION_FIELD, "day", "processed_at")


class FeaturizeErrorReason(StrEnum):
    """Why the stream could not featurize a manifest row."""

    MALFORMED_MANIFEST = "malformed_manifest"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    IMAGE_NOT_FOUND = "image_not_found"
    IMAGE_READ_FAILED = "image_read_failed"
    IMAGE_DECODE_FAILED = "image_decode_failed"
    # The image is larger than the worker's read cap (streaming_job.featurizer.image_io.MAX_IMAGE_BYTES):
    # not read whole.
    IMAGE_TOO_LARGE = "image_too_large"
    # The image's bytes did not arrive within `--image-read-timeout`: the read is abandoned.
    IMAGE_READ_TIMEOUT = "image_read_timeout"
    # image_uri is not `<lake>/clean/dt=<day>/<id>.jpg`: never read (a manifest cannot name any file).
    IMAGE_URI_OUTSIDE_LAKE = "image_uri_outside_lake"
    # Another row of the same micro-batch already carries this image_id: its features are published once.
    DUPLICATE_IMAGE_ID = "duplicate_image_id"


def field_names(fields: tuple[tuple[str, str], ...]) -> list[str]:
    return [name for name, _ in fields]


def required_field_names(fields: tuple[tuple[str, str], ...]) -> list[str]:
    return [name for name, kind in fields if not kind.endswith("?")]
