"""Hand-built rows of the lake's tables, in the contract's Arrow schemas: the one place tests make them.

Every column has a plain default; a test names only the columns it is about, each either one value
for every row or one value per row. A column the contract adds gets its default here, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from fruits_lake.schemas import ERRORS_ARROW_SCHEMA, FEATURES_ARROW_SCHEMA

UPLOADED = datetime(2026, 3, 1, 22, tzinfo=UTC)
FEATURE_DEFAULTS: dict[str, Any] = {
    "subject_id": None,
    "key_version": None,
    "label": "apple",
    "region": None,
    "captured_hour": None,
    "uploaded_at": UPLOADED,
    "features": [0.5, -0.5],
    "pca_residual": 0.1,
    "model_version": "m",
    "pca_version": "p",
    "predicted_label": None,
    "prediction_confidence": None,
    "classifier_version": None,
}
ERROR_DEFAULTS: dict[str, Any] = {
    "image_uri": None,
    "reason": "malformed_manifest",
    "detail": "unparseable",
    "processed_at": UPLOADED,
    "error_key": None,
}


def _column(name: str, value: Any, count: int) -> list:
    """A list is one value per row; anything else (a feature vector too) is repeated on every row."""
    per_row = isinstance(value, list | tuple) and (
        name != "features" or (bool(value) and isinstance(value[0], list))
    )
    if not per_row:
        return [value] * count
    if len(value) != count:
        raise ValueError(f"{name}: {len(value)} values for {count} rows")
    return list(value)


def feature_rows(image_ids: Sequence[str], **columns: Any) -> pa.Table:
    """Features rows for `image_ids`; `ingested_at` and `processed_at` default to `uploaded_at`."""
    count = len(image_ids)
    values = {**FEATURE_DEFAULTS, **columns}
    table = {"image_id": list(image_ids)} | {
        name: _column(name, value, count) for name, value in values.items()
    }
    for name in ("ingested_at", "processed_at"):
        table.setdefault(name, table["uploaded_at"])
    return pa.table({field.name: table[field.name] for field in FEATURES_ARROW_SCHEMA}).cast(
        FEATURES_ARROW_SCHEMA
    )


def error_rows(image_ids: Sequence[str | None], **columns: Any) -> pa.Table:
    """Errors rows for `image_ids` (None: a manifest whose id could not be read)."""
    count = len(image_ids)
    values = {**ERROR_DEFAULTS, **columns}
    table = {"image_id": list(image_ids)} | {
        name: _column(name, value, count) for name, value in values.items()
    }
    return pa.table({field.name: table[field.name] for field in ERRORS_ARROW_SCHEMA}).cast(
        ERRORS_ARROW_SCHEMA
    )
