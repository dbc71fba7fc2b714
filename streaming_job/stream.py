"""The streaming featurizer: manifests in, k-wide PCA features out, exactly once.

    readStream json(<lake>/manifests/, explicit manifest schema, PERMISSIVE)
      -> foreachBatch(MicroBatchWriter):
           classify_manifests    malformed / unsupported manifests -> error rows
           featurize_manifests   mapInPandas: read image, TF forward pass, PCA, in the worker
           BatchPublisher        features/ and errors/ Parquet, keyed by batch id (sink.py)

The featurizer spec and the PCA projection are broadcast once from the driver;
each Python worker builds the model once and keeps it (worker_cache).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from fruits_ingest import contracts
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from streaming_job.config import StreamConfig
from streaming_job.monitoring import BatchStats, BatchStatsBoard, utc_now
from streaming_job.schemas import CORRUPT_RECORD_COLUMN, features_schema, manifest_read_schema
from streaming_job.sink import BatchPublisher

log = logging.getLogger(__name__)

QUERY_NAME = "fruits-features"
# Columns added to the manifest rows on their way through a micro-batch.
MANIFEST_NAME_COLUMN = "_manifest_name"
MANIFEST_MTIME_COLUMN = "_manifest_mtime_ms"
REASON_COLUMN = "_error_reason"
DETAIL_COLUMN = "_error_detail"
IMAGE_ID_PATTERN = r"^[0-9a-f]{32}$"
MANIFEST_NAME_PATTERN = r"^([0-9a-f]{32})\.json$"
UNPARSEABLE_DETAIL = "manifest is not a JSON document of the manifest v1 schema (unparseable or wrong types)"

FEATURE_NAMES = contracts.field_names(contracts.FEATURES_FIELDS)
ERROR_NAMES = contracts.field_names(contracts.ERROR_FIELDS)
# Manifest fields the featurizing worker needs or passes through to the features row.
PASS_THROUGH = [name for name in FEATURE_NAMES if name in contracts.field_names(contracts.MANIFEST_FIELDS)]


# --- Source ------------------------------------------------------------------------------------


# How manifests are parsed, by the stream and by anyone re-reading them in batch.
MANIFEST_READ_OPTIONS = {
    "mode": "PERMISSIVE",
    "columnNameOfCorruptRecord": CORRUPT_RECORD_COLUMN,
    # One JSON document per file: a pretty-printed manifest parses too, a broken file is one corrupt record.
    "multiLine": "true",
    # dt comes from the manifest itself, not from the dt=... directories: partition inference is decided
    # once, when the query starts, and a query started on an empty manifests/ would misalign columns.
    "recursiveFileLookup": "true",
}


def read_manifests(spark: SparkSession, config: StreamConfig) -> DataFrame:
    """The manifest stream: explicit schema, malformed files kept as corrupt records, never inferred."""
    reader = (
        spark.readStream.schema(manifest_read_schema())
        .options(**MANIFEST_READ_OPTIONS)
        .option("maxFilesPerTrigger", config.max_files_per_trigger)
    )
    if config.clean_source != "off":
        reader = reader.option("cleanSource", config.clean_source)
        if config.clean_source == "archive":
            reader = reader.option("sourceArchiveDir", config.archive_uri)
    return with_manifest_file(reader.json(config.manifests_uri))


def with_manifest_file(manifests: DataFrame) -> DataFrame:
    """Add the manifest's file name (`<image_id>.json`) and modification time from `_metadata`."""
    return manifests.withColumns(
        {
            MANIFEST_NAME_COLUMN: F.col("_metadata.file_name"),
            MANIFEST_MTIME_COLUMN: F.unix_millis(F.col("_metadata.file_modification_time")),
        }
    )


# --- Validation ----------------------------------------------------------------------------------


def classify_manifests(manifests: DataFrame) -> DataFrame:
    """Add `_error_reason`/`_error_detail`: null for a usable manifest, else why it is not.

    Order of the checks: unparseable (corrupt record, wrong types) -> malformed;
    a schema_version other than the supported one -> unsupported; a required
    field missing -> malformed, naming the fields (never their values).
    """
    required = contracts.required_field_names(contracts.MANIFEST_FIELDS)
    missing = F.concat_ws(", ", *[F.when(F.col(name).isNull(), F.lit(name)) for name in required])
    version = F.col("schema_version")
    corrupt = F.col(CORRUPT_RECORD_COLUMN).isNotNull()
    foreign_version = version.isNotNull() & (version != contracts.MANIFEST_SCHEMA_VERSION)
    reasons = contracts.FeaturizeErrorReason
    reason = (
        F.when(corrupt, reasons.MALFORMED_MANIFEST.value)
        .when(foreign_version, reasons.UNSUPPORTED_SCHEMA_VERSION.value)
        .when(missing != "", reasons.MALFORMED_MANIFEST.value)
    )
    detail = (
        F.when(corrupt, F.lit(UNPARSEABLE_DETAIL))
        .when(
            foreign_version,
            F.format_string(
                f"schema_version %d is not supported (expected {contracts.MANIFEST_SCHEMA_VERSION})", version
            ),
        )
        .when(missing != "", F.concat(F.lit("missing required field(s): "), missing))
    )
    return manifests.withColumns({REASON_COLUMN: reason, DETAIL_COLUMN: detail})


def safe_image_id() -> Column:
    """The row's image id, only when it has the expected shape; else from the manifest file name."""
    from_name = F.regexp_extract(F.col(MANIFEST_NAME_COLUMN), MANIFEST_NAME_PATTERN, 1)
    return F.coalesce(
        F.when(F.col("image_id").rlike(IMAGE_ID_PATTERN), F.col("image_id")),
        F.when(from_name != "", from_name),
    )


def manifest_error_rows(classified: DataFrame, processed_at: str, processing_dt: str) -> DataFrame:
    """Rows for the manifests that cannot be featurized (error fields, reason/detail still internal)."""
    return classified.where(F.col(REASON_COLUMN).isNotNull()).select(
        safe_image_id().alias("image_id"),
        F.when(F.col(CORRUPT_RECORD_COLUMN).isNull(), F.col("image_uri")).alias("image_uri"),
        F.col(REASON_COLUMN),
        F.col(DETAIL_COLUMN),
        F.lit(processed_at).alias("processed_at"),
        F.coalesce(F.col("dt"), F.lit(processing_dt)).alias("dt"),
        F.col(MANIFEST_MTIME_COLUMN),
    )


# --- Featurization -------------------------------------------------------------------------------

# What the featurizing worker returns: a features row, or an error row with the same keys.
FEATURIZED_COLUMNS = [*FEATURE_NAMES, "image_uri", REASON_COLUMN, DETAIL_COLUMN, MANIFEST_MTIME_COLUMN]


def featurized_schema():
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    features = {field.name: field for field in features_schema().fields}
    return StructType(
        [
            *(StructField(name, features[name].dataType, nullable=True) for name in FEATURE_NAMES),
            StructField("image_uri", StringType(), nullable=True),
            StructField(REASON_COLUMN, StringType(), nullable=True),
            StructField(DETAIL_COLUMN, StringType(), nullable=True),
            StructField(MANIFEST_MTIME_COLUMN, LongType(), nullable=True),
        ]
    )


@dataclass(frozen=True)
class WorkerContext:
    """What each featurizing task needs: broadcasts, sizes and the model-build counter."""

    spec_broadcast: object
    projection_broadcast: object
    inference_batch_size: int
    cores_per_task: int
    model_builds: object  # a Spark accumulator


def featurize_partition(context: WorkerContext):
    """The mapInPandas function: manifest rows -> features rows (or error rows), k floats each."""

    def featurize(frames: Iterator) -> Iterator:
        import pandas as pd

        from streaming_job.featurize import featurize_uris
        from streaming_job.worker_cache import (
            cached_featurizer,
            cached_image_reader,
            model_builds_in_this_process,
        )

        builds_before = model_builds_in_this_process()
        featurizer = cached_featurizer(
            context.spec_broadcast, context.inference_batch_size, context.cores_per_task
        )
        context.model_builds.add(model_builds_in_this_process() - builds_before)
        projection = context.projection_broadcast.value
        reader = cached_image_reader()
        for frame in frames:
            result = featurize_uris(frame["image_uri"].tolist(), featurizer, projection, reader)
            processed_at = contracts.iso_utc(utc_now())
            out = frame[[*PASS_THROUGH, "image_uri", MANIFEST_MTIME_COLUMN]].copy()
            out["processed_at"] = processed_at
            out["features"] = result.features
            out["pca_residual"] = result.residuals
            out["model_version"] = projection.model_version
            out["pca_version"] = projection.pca_version
            out[REASON_COLUMN] = [error[0] if error else None for error in result.errors]
            out[DETAIL_COLUMN] = [error[1] if error else None for error in result.errors]
            yield pd.DataFrame(out, columns=FEATURIZED_COLUMNS)

    return featurize


def featurize_manifests(valid: DataFrame, context: WorkerContext, partitions: int) -> DataFrame:
    """Featurize valid manifest rows, once per image_id, spread over `partitions` tasks.

    Repartitioning by image_id first makes the de-duplication local to each
    partition (no second shuffle) and gives every core a share of the images.
    """
    columns = [*PASS_THROUGH, "image_uri", MANIFEST_MTIME_COLUMN]
    deduplicated = valid.select(*columns).repartition(partitions, "image_id").dropDuplicates(["image_id"])
    return deduplicated.mapInPandas(featurize_partition(context), schema=featurized_schema())


def latency_ms(start_column: str, end_column: str) -> Column:
    def millis(column: str) -> Column:
        return F.unix_millis(F.to_timestamp(F.col(column)))

    return millis(end_column) - millis(start_column)


# --- Sink ----------------------------------------------------------------------------------------


class MicroBatchWriter:
    """The foreachBatch function: classify, featurize, publish features and errors, record stats."""

    def __init__(
        self, spark: SparkSession, config: StreamConfig, context: WorkerContext, board: BatchStatsBoard
    ) -> None:
        self.context = context
        self.board = board
        self.features = BatchPublisher(spark, config.features_uri)
        self.errors = BatchPublisher(spark, config.errors_uri)
        self.partitions = max(1, spark.sparkContext.defaultParallelism)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        now = utc_now()
        # Cached, so the file source is scanned once although two branches read it.
        classified = classify_manifests(batch).persist()
        outcome = None
        try:
            manifest_rows = classified.count()
            featurized = featurize_manifests(
                classified.where(F.col(REASON_COLUMN).isNull()), self.context, self.partitions
            )
            invalid = manifest_error_rows(classified, contracts.iso_utc(now), contracts.partition_date(now))
            outcome = featurized.unionByName(invalid, allowMissingColumns=True).persist()
            stats = self._measure(outcome, manifest_rows)
            self._publish(outcome, batch_id, stats)
        finally:
            if outcome is not None:
                outcome.unpersist()
            classified.unpersist()
        self.board.record(batch_id, stats)
        log.info(
            "batch %d published: %d manifests, %d feature rows, %d error rows",
            batch_id,
            stats.manifest_rows,
            stats.feature_rows,
            stats.error_rows,
        )

    def _publish(self, outcome: DataFrame, batch_id: int, stats: BatchStats) -> None:
        """Write (or, for an empty side, just clear) both outputs of the batch."""
        is_feature = F.col(REASON_COLUMN).isNull()
        if stats.feature_rows:
            self.features.write(outcome.where(is_feature).select(*FEATURE_NAMES).coalesce(1), batch_id)
        else:
            self.features.publish(batch_id)
        if stats.error_rows:
            errors = outcome.where(~is_feature).select(
                "image_id",
                "image_uri",
                F.col(REASON_COLUMN).alias("reason"),
                F.col(DETAIL_COLUMN).alias("detail"),
                "processed_at",
                "dt",
            )
            self.errors.write(errors.coalesce(1), batch_id)
        else:
            self.errors.publish(batch_id)

    def _measure(self, outcome: DataFrame, manifest_rows: int) -> BatchStats:
        """One pass over the batch (it also fills the cache the writes read from)."""
        builds_before = self.context.model_builds.value
        is_feature = F.col(REASON_COLUMN).isNull()
        row = outcome.agg(
            F.count(F.when(is_feature, 1)).alias("feature_rows"),
            F.count(F.when(~is_feature, 1)).alias("error_rows"),
            F.percentile_approx(
                F.when(is_feature, latency_ms("ingested_at", "processed_at")),
                F.array(F.lit(0.5), F.lit(0.95)),
            ).alias("latency"),
            F.max(MANIFEST_MTIME_COLUMN).alias("newest_manifest_ms"),
        ).first()
        latency = row["latency"] or [None, None]
        return BatchStats(
            manifest_rows=manifest_rows,
            feature_rows=row["feature_rows"],
            error_rows=row["error_rows"],
            latency_p50_ms=float(latency[0]) if latency[0] is not None else None,
            latency_p95_ms=float(latency[1]) if latency[1] is not None else None,
            model_builds=self.context.model_builds.value - builds_before,
            newest_manifest_ms=row["newest_manifest_ms"],
        )
