"""A real local lake as the stream leaves it: many small appends (one per micro-batch) over three days."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from pyiceberg.table import Table

from fruits_lake.catalog import ensure_tables, open_catalog
from tests import table_rows

# The last three days before today (UTC): well inside the default row retention.
_TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
DAYS = tuple(_TODAY - timedelta(days=ago) for ago in (3, 2, 1))
BATCHES_PER_DAY = 4
ROWS_PER_BATCH = 3
LABELS = ("apple", "banana", "cherry")


def feature_rows(day: datetime, batch: int) -> pa.Table:
    n = ROWS_PER_BATCH
    seeds = [day.toordinal() * 100 + batch * 10 + i for i in range(n)]
    times = [day + timedelta(hours=batch * 5, minutes=i) for i in range(n)]
    return table_rows.feature_rows(
        [f"{seed:032x}" for seed in seeds],
        subject_id=[f"subject-{seed % 2}" for seed in seeds],
        key_version="1",
        label=[LABELS[seed % 3] for seed in seeds],
        region="u09t",
        captured_hour=times,
        uploaded_at=times,
        features=[[float(seed), seed / 7.0, -1.5] for seed in seeds],
        pca_residual=0.25,
        model_version="mobilenetv2-test",
        pca_version="pca-test",
    )


def error_rows(day: datetime, batch: int) -> pa.Table:
    return table_rows.error_rows(
        [f"{day.toordinal() * 100 + batch:032x}"],
        reason="image_unreadable",
        detail="decode failed",
        processed_at=day + timedelta(hours=batch),
    )


def build_small_files_lake(lake: Path, days=DAYS) -> tuple[Table, Table]:
    """BATCHES_PER_DAY appends per day to each table, as the stream's micro-batches commit."""
    features, errors = ensure_tables(open_catalog(str(lake)))
    for day in days:
        for batch in range(BATCHES_PER_DAY):
            features.append(feature_rows(day, batch))
            errors.append(error_rows(day, batch))
    return features, errors


def age_files(root: Path, age: timedelta) -> None:
    """Date every file under `root` back by `age`: the batches were written days ago."""
    stamp = (datetime.now(UTC) - age).timestamp()
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (stamp, stamp))
