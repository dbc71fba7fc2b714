"""What a micro-batch's commit costs the stream: the sink's work per batch on a local lake.

Appends `--batches` micro-batches of each `--rows` size (k float features per
row, plus a few error rows) through the stream's own TableSink: the
exactly-once lookup, the re-read check, the features append and the errors
append. Two cases per size:
  steady  one query writing new images (the re-read check finds nothing to look up)
  reset   a new query re-reading the rows of an earlier one (a reset checkpoint with
          --clean-source off): the filtered scan runs and every row is skipped
Prints JSON: the median and 90th-percentile seconds per batch (and the
medians of the first and last tenth of the batches: each commit rewrites the
table metadata, which grows with its snapshots until they are expired), the
seconds the batch's featurizing takes at `--rate` images/s, the commit's share
of it, and the smallest trigger keeping the steady commit under `--max-share`.

    python -m benchmarks.commit_cost [--rows 4000 8000] [--batches 20] [--cases steady reset]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from fruits_core.errors import ConfigError, exit_code_of
from fruits_lake.catalog import ensure_tables, open_catalog
from fruits_lake.reading import committed_rows
from fruits_lake.schemas import ERRORS_ARROW_SCHEMA, FEATURES_ARROW_SCHEMA, conform_rows
from fruits_lake.sink import TableSink

DEFAULT_ROWS = (4000, 8000)
DEFAULT_BATCHES = 20
DEFAULT_K = 10
DEFAULT_ERROR_ROWS = 5
# The stream's backlog rate at 224 px on 2 cores (LiteRT, docs/performance.md).
DEFAULT_RATE = 400.0
DEFAULT_MAX_SHARE = 0.10
PCA_VERSION = "pca-k10-benchmark000"
STEADY_QUERY = "commit-cost-steady"
RESET_QUERY = "commit-cost-reset"
CASES = ("steady", "reset")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rows", type=int, nargs="+", default=list(DEFAULT_ROWS), help="feature rows per batch"
    )
    parser.add_argument("--batches", type=int, default=DEFAULT_BATCHES, help="batches per size and case")
    parser.add_argument("--k", type=int, default=DEFAULT_K, help="floats per feature vector")
    parser.add_argument("--error-rows", type=int, default=DEFAULT_ERROR_ROWS, help="error rows per batch")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="featurizing rate, images/s")
    parser.add_argument("--max-share", type=float, default=DEFAULT_MAX_SHARE, help="commit share allowed")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES), help="cases to measure")
    parser.add_argument("--lake", default=None, help="lake directory (default: a fresh temporary one)")


def validate(args: argparse.Namespace) -> None:
    if not args.rows or min(args.rows) < 1 or args.batches < 1 or args.k < 1 or args.error_rows < 0:
        raise ConfigError("--rows, --batches and --k must be >= 1, --error-rows >= 0")
    if args.rate <= 0 or not 0 < args.max_share < 1:
        raise ConfigError("--rate must be > 0 and --max-share in (0, 1)")


def feature_batch(first_id: int, rows: int, k: int, moment: datetime, rng: np.random.Generator) -> pa.Table:
    """`rows` features rows as split_outcome gives them: one upload hour, k random floats each."""
    hour = moment.replace(minute=0, second=0, microsecond=0)
    vectors = rng.standard_normal((rows, k), dtype=np.float32)
    return conform_rows(
        pa.table(
            {
                "image_id": [f"{index:032x}" for index in range(first_id, first_id + rows)],
                "subject_id": [f"{index % 997:064x}" for index in range(rows)],
                "key_version": ["1"] * rows,
                "label": ["apple"] * rows,
                "region": ["u09t"] * rows,
                "captured_hour": [hour] * rows,
                "uploaded_at": [hour] * rows,
                "ingested_at": [moment] * rows,
                "processed_at": [moment] * rows,
                "features": pa.FixedSizeListArray.from_arrays(vectors.ravel(), k).cast(
                    pa.list_(pa.float32())
                ),
                "pca_residual": rng.random(rows, dtype=np.float32),
                "model_version": ["mobilenet_v2-int8"] * rows,
                "pca_version": [PCA_VERSION] * rows,
            }
        ),
        FEATURES_ARROW_SCHEMA,
    )


def error_batch(rows: int, moment: datetime) -> pa.Table:
    return conform_rows(
        pa.table(
            {
                "image_id": pa.array([None] * rows, pa.string()),
                "image_uri": pa.array([None] * rows, pa.string()),
                "reason": ["image_decode_failed"] * rows,
                "detail": ["cannot identify image file"] * rows,
                "processed_at": [moment] * rows,
            }
        ),
        ERRORS_ARROW_SCHEMA,
    )


def timed_writes(sink: TableSink, batches: list[tuple[pa.Table, pa.Table]], query_id: str) -> list[float]:
    seconds = []
    for batch_id, (features, errors) in enumerate(batches):
        started = time.perf_counter()
        sink.write(features, errors, query_id, batch_id)
        seconds.append(time.perf_counter() - started)
    return seconds


def summary(seconds: list[float]) -> dict:
    tenth = max(1, len(seconds) // 10)
    return {
        "median_s": round(float(np.median(seconds)), 4),
        "p90_s": round(float(np.percentile(seconds, 90)), 4),
        "first_tenth_median_s": round(float(np.median(seconds[:tenth])), 4),
        "last_tenth_median_s": round(float(np.median(seconds[-tenth:])), 4),
    }


def measure(lake: str, rows: int, args: argparse.Namespace) -> dict:
    """Steady then reset commits of `rows`-row batches into a fresh lake."""
    features, errors = ensure_tables(open_catalog(lake))
    sink = TableSink(features, errors, PCA_VERSION)
    rng = np.random.default_rng(rows)
    start = datetime.now(UTC) - timedelta(hours=1)
    batches = [
        (
            feature_batch(index * rows, rows, args.k, start + timedelta(seconds=index), rng),
            error_batch(args.error_rows, start),
        )
        for index in range(args.batches)
    ]
    result: dict = {"rows": rows, "batches": args.batches}
    steady = timed_writes(sink, batches, STEADY_QUERY)
    if "steady" in args.cases:
        batch_seconds = rows / args.rate
        steady_median = float(np.median(steady))
        result["steady"] = summary(steady)
        result["featurize_s_at_rate"] = round(batch_seconds, 2)
        result["steady_share"] = round(steady_median / batch_seconds, 4)
        # A trigger of T s gathers T x rate images under load: the commit keeps its share when T >= this.
        result["min_trigger_s"] = math.ceil(steady_median / args.max_share)
    if "reset" in args.cases:
        result["reset"] = summary(timed_writes(sink, batches, RESET_QUERY))
    result["table_rows"] = committed_rows(sink.features.refresh())
    return result


def run(args: argparse.Namespace) -> int:
    validate(args)
    results = []
    for rows in args.rows:
        if args.lake:
            lake = f"{args.lake.rstrip('/')}/rows-{rows}"
            results.append(measure(lake, rows, args))
            continue
        with tempfile.TemporaryDirectory(prefix="fruits-commit-cost-") as lake:
            results.append(measure(lake, rows, args))
    print(
        json.dumps({"rate_images_per_s": args.rate, "max_share": args.max_share, "sizes": results}, indent=2)
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.commit_cost", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    return exit_code_of("commit_cost", lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
