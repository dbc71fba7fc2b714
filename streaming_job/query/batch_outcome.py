"""A micro-batch's featurized rows, collected on the driver: split into the two outputs and measured.

The featurizing job (stream.py) returns one row per manifest with the columns
named here; `split_outcome` turns that Arrow table into the features and
errors rows (the tables' v2 schemas, timestamps parsed from the manifest's ISO
strings) and the batch's figures, without another Spark job.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fruits_core import contracts
from fruits_lake.schemas import ERRORS_ARROW_SCHEMA, FEATURES_ARROW_SCHEMA
from streaming_job.monitoring.status_log import BatchStats

# Columns added to the manifest rows on their way through a micro-batch.
REASON_COLUMN = "_error_reason"
DETAIL_COLUMN = "_error_detail"
# The manifest line's identity (contracts.error_key), computed in the scan: the errors table's error_key.
ERROR_KEY_COLUMN = "_error_key"

FEATURE_NAMES = contracts.field_names(contracts.FEATURES_FIELDS)
TIMESTAMP_KIND = "timestamp"


def _worker_kind(kind: str) -> str:
    """A features column as the worker carries it: nullable, timestamps still the manifest's ISO strings."""
    base_kind = kind.rstrip("?")
    return "string?" if base_kind == TIMESTAMP_KIND else f"{base_kind}?"


# The worker-to-driver row, defined once: what the featurizing job returns for every manifest row, a
# features row or an error row (reason set). Its column list, its Spark schema (stream.featurized_schema)
# and the columns selected for the workers (stream.batch_row_columns) all come from these fields.
WORKER_ROW_FIELDS: tuple[tuple[str, str], ...] = (
    *((name, _worker_kind(kind)) for name, kind in contracts.FEATURES_FIELDS),
    ("image_uri", "string?"),
    (REASON_COLUMN, "string?"),
    (DETAIL_COLUMN, "string?"),
    (ERROR_KEY_COLUMN, "string?"),
)
FEATURIZED_COLUMNS = contracts.field_names(WORKER_ROW_FIELDS)
# Filled in by the worker; every other column arrives with the manifest row, in this order.
WORKER_COMPUTED_COLUMNS = (
    "processed_at",
    "features",
    "pca_residual",
    "model_version",
    "pca_version",
    "predicted_label",
    "prediction_confidence",
    "classifier_version",
)
WORKER_INPUT_COLUMNS = [name for name in FEATURIZED_COLUMNS if name not in WORKER_COMPUTED_COLUMNS]
# errors/ columns, from the featurized columns they are taken from.
ERROR_SOURCES = {
    "image_id": "image_id",
    "image_uri": "image_uri",
    "reason": REASON_COLUMN,
    "detail": DETAIL_COLUMN,
    "processed_at": "processed_at",
    "error_key": ERROR_KEY_COLUMN,
}
# The timestamp columns of the features rows: (name, required).
TIMESTAMP_COLUMNS = tuple(
    (name, not kind.endswith("?"))
    for name, kind in contracts.FEATURES_FIELDS
    if kind.rstrip("?") == TIMESTAMP_KIND
)
ARROW_TIMESTAMP = pa.timestamp("us", tz="UTC")
LATENCY_PERCENTILES = (50, 95)


@dataclass(frozen=True)
class BatchOutcome:
    features: pa.Table
    errors: pa.Table
    manifest_rows: int
    latencies_ms: list[float]
    # Per error row, its manifest's (subject_id, ingested_at): the sink drops an erased subject's.
    error_owners: pa.Table | None = None

    def with_errors(self, errors: pa.Table, owners: pa.Table) -> BatchOutcome:
        """This outcome with more error rows (found on the driver, e.g. 0-byte manifests) and their owners."""
        if errors.num_rows == 0:
            return self
        return replace(
            self,
            errors=pa.concat_tables([self.errors, errors]),
            error_owners=pa.concat_tables([self.error_owners, owners.cast(self.error_owners.schema)]),
        )

    def stats(
        self,
        model_builds: int,
        already_in_table: int,
        feature_rows: int | None = None,
        error_rows: int | None = None,
        low_confidence: float = 0.0,
    ) -> BatchStats:
        """The batch's figures; `feature_rows`/`error_rows`: what the sink says is in the tables
        (erased subjects' and repeated rows left out), so the status totals add up to the tables."""
        p50, p95 = (
            (float(value) for value in np.percentile(self.latencies_ms, LATENCY_PERCENTILES))
            if self.latencies_ms
            else (None, None)
        )
        return BatchStats(
            manifest_rows=self.manifest_rows,
            feature_rows=self.features.num_rows - already_in_table if feature_rows is None else feature_rows,
            already_in_table=already_in_table,
            error_rows=self.errors.num_rows if error_rows is None else error_rows,
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            model_builds=model_builds,
            **prediction_figures(self.features, low_confidence),
        )


def prediction_figures(features: pa.Table, low_confidence: float) -> dict[str, int | None]:
    """Low-confidence predictions and label disagreements among a batch's scored rows (None: none scored)."""
    scored = features.filter(pc.is_valid(features.column("predicted_label")))
    if scored.num_rows == 0:
        return {"low_confidence_rows": None, "label_disagreements": None}
    low = pc.sum(pc.less(scored.column("prediction_confidence"), low_confidence)).as_py() or 0
    labelled = scored.filter(pc.is_valid(scored.column("label")))
    disagree = pc.sum(pc.not_equal(labelled.column("label"), labelled.column("predicted_label"))).as_py() or 0
    return {"low_confidence_rows": int(low), "label_disagreements": int(disagree)}


def split_outcome(featurized: pa.Table) -> BatchOutcome:
    """Features rows (one per image_id, repeats become error rows), error rows and the batch's figures."""
    missing = sorted(set(FEATURIZED_COLUMNS) - set(featurized.column_names))
    if missing:
        raise ValueError(f"featurized batch lacks column(s) {', '.join(missing)}")
    featurized = mark_duplicate_image_ids(with_parsed_timestamps(featurized))
    is_feature = pc.is_null(featurized.column(REASON_COLUMN))
    features = featurized.filter(is_feature).select(FEATURE_NAMES).cast(FEATURES_ARROW_SCHEMA)
    error_rows = featurized.filter(pc.invert(is_feature))
    errors = pa.table(
        [error_rows.column(source) for source in ERROR_SOURCES.values()], names=list(ERROR_SOURCES)
    ).cast(ERRORS_ARROW_SCHEMA)
    return BatchOutcome(
        features=features,
        errors=errors,
        manifest_rows=featurized.num_rows,
        latencies_ms=latencies_ms(features.column("ingested_at"), features.column("processed_at")),
        error_owners=error_rows.select(["subject_id", "ingested_at"]),
    )


BAD_TIMESTAMP_DETAIL = "{name} is not an ISO 8601 timestamp with a time zone"


def with_parsed_timestamps(featurized: pa.Table) -> pa.Table:
    """The timestamp columns (and processed_at) parsed to UTC instants.

    A features row whose required timestamp is missing or unreadable, or whose
    optional one is present but unreadable, becomes a malformed_manifest error
    row naming the field (never its value): the table's columns are real
    timestamps, and one bad manifest must not fail its whole micro-batch.
    """
    reasons = featurized.column(REASON_COLUMN).to_pylist()
    details = featurized.column(DETAIL_COLUMN).to_pylist()
    for name, required in TIMESTAMP_COLUMNS:
        texts = featurized.column(name).to_pylist()
        moments = [parse_utc(text) for text in texts]
        for position, (text, moment) in enumerate(zip(texts, moments, strict=True)):
            unreadable = moment is None and (required or text is not None)
            if unreadable and reasons[position] is None:
                reasons[position] = contracts.FeaturizeErrorReason.MALFORMED_MANIFEST.value
                details[position] = BAD_TIMESTAMP_DETAIL.format(name=name)
        featurized = _replace(featurized, name, pa.array(moments, ARROW_TIMESTAMP))
    featurized = _replace(featurized, REASON_COLUMN, pa.array(reasons, pa.string()))
    return _replace(featurized, DETAIL_COLUMN, pa.array(details, pa.string()))


def parse_utc(text: str | None):
    """The UTC instant an ISO 8601 string names; None when absent, unreadable or without a time zone."""
    if text is None:
        return None
    try:
        moment = contracts.parse_iso(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _replace(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, column)


DUPLICATE_DETAIL = "another manifest of this micro-batch carries this image_id; its features were published"


def mark_duplicate_image_ids(featurized: pa.Table) -> pa.Table:
    """Every features row after the first of its image_id made an error row (duplicate_image_id).

    A batch publishes an image's features once; the repeats are kept as error rows
    (with their image_uri), so none vanishes without a trace.
    """
    reasons = featurized.column(REASON_COLUMN).to_pylist()
    seen: set[str] = set()
    duplicates = []
    for position, (image_id, reason) in enumerate(
        zip(featurized.column("image_id").to_pylist(), reasons, strict=True)
    ):
        if reason is not None:
            continue
        if image_id in seen:
            duplicates.append(position)
        seen.add(image_id)
    if not duplicates:
        return featurized
    details = featurized.column(DETAIL_COLUMN).to_pylist()
    for position in duplicates:
        reasons[position] = contracts.FeaturizeErrorReason.DUPLICATE_IMAGE_ID.value
        details[position] = DUPLICATE_DETAIL
    featurized = _replace(featurized, REASON_COLUMN, pa.array(reasons, pa.string()))
    return _replace(featurized, DETAIL_COLUMN, pa.array(details, pa.string()))


def latencies_ms(ingested_at: pa.ChunkedArray, processed_at: pa.ChunkedArray) -> list[float]:
    """Ingest-to-features latency of each row, in ms (rows missing either timestamp are left out)."""
    elapsed = pc.subtract(processed_at.cast(ARROW_TIMESTAMP), ingested_at.cast(ARROW_TIMESTAMP))
    return [micros / 1000.0 for micros in pc.drop_null(elapsed.cast(pa.int64())).to_pylist()]
