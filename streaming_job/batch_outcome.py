"""A micro-batch's featurized rows, collected on the driver: split into the two outputs and measured.

The featurizing job (stream.py) returns one row per manifest with the columns
named here; `split_outcome` turns that Arrow table into the features and
errors tables (contract schemas, ready for Parquet) and the batch's figures,
without another Spark job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fruits_core import contracts
from streaming_job.schemas import arrow_schema
from streaming_job.status_log import BatchStats

# Columns added to the manifest rows on their way through a micro-batch.
REASON_COLUMN = "_error_reason"
DETAIL_COLUMN = "_error_detail"

FEATURE_NAMES = contracts.field_names(contracts.FEATURES_FIELDS)
# The worker-to-driver row, defined once: what the featurizing job returns for every manifest row, a
# features row or an error row (reason set). Its column list, its Spark schema (stream.featurized_schema)
# and the columns selected for the workers (stream.batch_row_columns) all come from these fields.
WORKER_ROW_FIELDS: tuple[tuple[str, str], ...] = (
    *((name, kind.rstrip("?") + "?") for name, kind in contracts.FEATURES_FIELDS),
    ("image_uri", "string?"),
    (REASON_COLUMN, "string?"),
    (DETAIL_COLUMN, "string?"),
)
FEATURIZED_COLUMNS = contracts.field_names(WORKER_ROW_FIELDS)
# Filled in by the worker; every other column arrives with the manifest row, in this order.
WORKER_COMPUTED_COLUMNS = ("processed_at", "features", "pca_residual", "model_version", "pca_version")
WORKER_INPUT_COLUMNS = [name for name in FEATURIZED_COLUMNS if name not in WORKER_COMPUTED_COLUMNS]
# errors/ columns, from the featurized columns they are taken from.
ERROR_SOURCES = {
    "image_id": "image_id",
    "image_uri": "image_uri",
    "reason": REASON_COLUMN,
    "detail": DETAIL_COLUMN,
    "processed_at": "processed_at",
    "dt": "dt",
}
FEATURES_ARROW_SCHEMA = arrow_schema(contracts.FEATURES_FIELDS)
ERRORS_ARROW_SCHEMA = arrow_schema(contracts.ERROR_FIELDS)
LATENCY_PERCENTILES = (50, 95)


@dataclass(frozen=True)
class BatchOutcome:
    features: pa.Table
    errors: pa.Table
    manifest_rows: int
    latencies_ms: list[float]

    def stats(self, model_builds: int) -> BatchStats:
        p50, p95 = (
            (float(value) for value in np.percentile(self.latencies_ms, LATENCY_PERCENTILES))
            if self.latencies_ms
            else (None, None)
        )
        return BatchStats(
            manifest_rows=self.manifest_rows,
            feature_rows=self.features.num_rows,
            error_rows=self.errors.num_rows,
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            model_builds=model_builds,
        )


def split_outcome(featurized: pa.Table) -> BatchOutcome:
    """Features rows (one per image_id, repeats become error rows), error rows and the batch's figures."""
    missing = sorted(set(FEATURIZED_COLUMNS) - set(featurized.column_names))
    if missing:
        raise ValueError(f"featurized batch lacks column(s) {', '.join(missing)}")
    featurized = mark_duplicate_image_ids(featurized)
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
        latencies_ms=latencies_ms(
            features.column("ingested_at").to_pylist(), features.column("processed_at").to_pylist()
        ),
    )


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
    featurized = featurized.set_column(
        featurized.column_names.index(REASON_COLUMN), REASON_COLUMN, pa.array(reasons, pa.string())
    )
    return featurized.set_column(
        featurized.column_names.index(DETAIL_COLUMN), DETAIL_COLUMN, pa.array(details, pa.string())
    )


def latencies_ms(ingested_at: list[str | None], processed_at: list[str | None]) -> list[float]:
    """Ingest-to-features latency of each row, in ms; rows with an unreadable timestamp are left out."""
    latencies = []
    for start, end in zip(ingested_at, processed_at, strict=True):
        if start is None or end is None:
            continue
        try:
            latencies.append((_parse_iso(end) - _parse_iso(start)).total_seconds() * 1000.0)
        except ValueError:
            continue
    return latencies


def _parse_iso(text: str) -> datetime:
    moment = contracts.parse_iso(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return moment
