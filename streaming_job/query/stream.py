"""The streaming featurizer: manifests in, k-wide PCA features out, exactly once.

    readStream text(<lake>/manifests/, one row per line) + from_json(explicit manifest schema, PERMISSIVE)
      -> foreachBatch(MicroBatchWriter), one Spark job per micro-batch:
           batch_row_columns     malformed / unsupported manifests classified as errors
           featurize_manifests   mapInPandas: read image, TF forward pass, PCA, classifier, in the worker
           toArrow               the batch's rows (k floats per image) to the driver
         then on the driver:
           split_outcome         features rows, error rows, batch figures (batch_outcome.py)
           TableSink             Iceberg appends, once per query and batch id (fruits_lake/sink.py)

The featurizer spec and the PCA projection are broadcast once from the driver;
each Python worker builds the model once and keeps it (worker_cache).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from fruits_core import contracts
from fruits_core.clock import utc_now
from fruits_lake.sink import TableSink
from streaming_job.checkpoints.source_cleanup import HadoopPaths
from streaming_job.config import StreamConfig
from streaming_job.monitoring.status_log import BatchStatsBoard
from streaming_job.query.batch_outcome import (
    DETAIL_COLUMN,
    ERROR_KEY_COLUMN,
    FEATURIZED_COLUMNS,
    REASON_COLUMN,
    WORKER_INPUT_COLUMNS,
    WORKER_ROW_FIELDS,
    split_outcome,
)
from streaming_job.query.empty_manifests import empty_manifest_errors, empty_manifests_of_batch
from streaming_job.query.parallelism import current_coalesce_width
from streaming_job.query.schemas import CORRUPT_RECORD_COLUMN, manifest_read_schema, struct_type
from streaming_job.scoring.classifier import LOW_CONFIDENCE, predict_rows
from streaming_job.scoring.classifier_swap import ClassifierSwap

log = logging.getLogger(__name__)

QUERY_NAME = "fruits-features"
# The manifest's file name (`<image_id>.json`), the fallback image_id of an unparseable manifest.
MANIFEST_NAME_COLUMN = "_manifest_name"
# One line of a manifest file (the text source's `value`): a manifest, JSON lines (manifest_group).
MANIFEST_TEXT_COLUMN = "value"
# Java's `$` also matches before a final newline: `\z` is the true end of the string.
JAVA_IMAGE_ID_PATTERN = r"^[0-9a-f]{32}\z"
MANIFEST_NAME_PATTERN = r"^([0-9a-f]{32})\.json$"
BAD_DT_DETAIL = "dt is not a YYYY-MM-DD calendar date"
BAD_IMAGE_ID_DETAIL = "image_id is not 32 lowercase hex digits"
OUTSIDE_LAKE_DETAIL = "image_uri is not a clean image of the lake (<lake>/clean/dt=<day>/<id>.jpg)"
FOREIGN_IMAGE_DETAIL = "image_uri names another image than image_id (its file is not <image_id>.jpg)"
# The image id in the file name of a clean image's URI.
NAMED_IMAGE_ID_PATTERN = r"/([0-9a-f]{32})\.jpg$"
UNPARSEABLE_DETAIL = "manifest is not a JSON document of the manifest v1 schema (unparseable or wrong types)"
ARRAY_DETAIL = "manifest is a JSON array: one JSON object per line"

# --- Source ------------------------------------------------------------------------------------


# How manifest files are read: one row per line, so a file holds one manifest (a single upload) or a
# batch's (the ingest's JSON-lines groups); a JSON array on one line is one row the checks name. dt comes
# from the manifest itself, not from the dt=... directories (partition inference is frozen when a query
# starts).
# ignoreMissingFiles: a manifest deleted after the batch was planned (an erasure, a lifecycle rule)
# is skipped instead of failing the batch with FAILED_READ_FILE.FILE_NOT_EXIST; its image is gone too.
MANIFEST_SOURCE_OPTIONS = {"recursiveFileLookup": "true", "ignoreMissingFiles": "true"}
# A line of only whitespace holds no manifest (JSON-lines readers skip it): dropped, not an error.
BLANK_LINE_PATTERN = r"^\s*\z"
# How a manifest's text is parsed: explicit schema, a broken document kept as a corrupt record.
MANIFEST_PARSE_OPTIONS = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT_RECORD_COLUMN}


def read_manifests(spark: SparkSession, config: StreamConfig) -> DataFrame:
    """The manifest stream: one row per manifest line, parsed with the explicit schema, never inferred."""
    reader = (
        spark.readStream.format("text")
        .options(**MANIFEST_SOURCE_OPTIONS)
        .option("maxFilesPerTrigger", config.max_files_per_trigger)
    )
    if config.clean_source != "off":
        reader = reader.option("cleanSource", config.clean_source)
        if config.clean_source == "archive":
            reader = reader.option("sourceArchiveDir", config.archive_uri)
    return parse_manifests(reader.load(config.manifests_uri))


def parse_manifests(lines: DataFrame) -> DataFrame:
    """Manifest fields from each line, plus the file name, the text (for the shape checks) and the
    line's identity (the error key of an error row)."""
    parsed = F.from_json(F.col(MANIFEST_TEXT_COLUMN), manifest_read_schema(), MANIFEST_PARSE_OPTIONS)
    return (
        lines.filter(~F.col(MANIFEST_TEXT_COLUMN).rlike(BLANK_LINE_PATTERN))
        .select(
            parsed.alias("manifest"),
            F.col(MANIFEST_TEXT_COLUMN),
            F.col("_metadata.file_name").alias(MANIFEST_NAME_COLUMN),
            error_key_column(F.col("_metadata.file_path"), F.col(MANIFEST_TEXT_COLUMN)).alias(
                ERROR_KEY_COLUMN
            ),
        )
        .select("manifest.*", MANIFEST_TEXT_COLUMN, MANIFEST_NAME_COLUMN, ERROR_KEY_COLUMN)
    )


def error_key_column(file_path: Column, line: Column) -> Column:
    """contracts.error_key in Spark: the same 32 hex of SHA-256 over `dt=<day>/<name>` and the line."""
    relative = F.regexp_extract(F.regexp_replace(file_path, "%3[Dd]", "="), r"([^/]*/[^/]*)$", 1)
    return F.substring(F.sha2(F.concat(relative, F.lit("\n"), line), 256), 1, contracts.ERROR_KEY_HEX)


# --- Validation ----------------------------------------------------------------------------------


def error_reason(lake_uri: str) -> tuple[Column, Column]:
    """(reason, detail) of a manifest row: both null for a usable manifest, else why it is not.

    Order of the checks: a JSON array (one object
    per line) -> malformed; unparseable (corrupt record, wrong types) -> malformed;
    a schema_version other than the supported one -> unsupported; a required
    field missing -> malformed, naming the fields (never their values); an
    image_id that is not 32 lowercase hex digits -> malformed; a dt that is not
    a real YYYY-MM-DD calendar day -> malformed (it names an output folder); an
    image_uri that is not `<lake>/clean/dt=<day>/<id>.jpg` -> image_uri_outside_lake
    (never read: a manifest cannot make the stream read any other file or object); an image_uri
    whose file name is not `<image_id>.jpg` -> malformed (a photo claimed under another id).
    """
    required = contracts.required_field_names(contracts.MANIFEST_FIELDS)
    missing = F.concat_ws(", ", *[F.when(F.col(name).isNull(), F.lit(name)) for name in required])
    version = F.col("schema_version")
    text = F.col(MANIFEST_TEXT_COLUMN)
    array = text.rlike(r"^\s*\[")
    corrupt = F.col(CORRUPT_RECORD_COLUMN).isNotNull()
    foreign_version = version.isNotNull() & (version != contracts.MANIFEST_SCHEMA_VERSION)
    bad_id = ~F.col("image_id").rlike(JAVA_IMAGE_ID_PATTERN)
    bad_dt = ~is_partition_date(F.col("dt"))
    outside = ~F.col("image_uri").rlike(f"^{contracts.clean_image_uri_pattern(lake_uri)}\\z")
    # Another image of the lake (maybe another person's photo) claimed under this image_id.
    foreign_image = F.regexp_extract(F.col("image_uri"), NAMED_IMAGE_ID_PATTERN, 1) != F.col("image_id")
    reasons = contracts.FeaturizeErrorReason
    reason = (
        F.when(array | corrupt, reasons.MALFORMED_MANIFEST.value)
        .when(foreign_version, reasons.UNSUPPORTED_SCHEMA_VERSION.value)
        .when(missing != "", reasons.MALFORMED_MANIFEST.value)
        .when(bad_id, reasons.MALFORMED_MANIFEST.value)
        .when(bad_dt, reasons.MALFORMED_MANIFEST.value)
        .when(outside, reasons.IMAGE_URI_OUTSIDE_LAKE.value)
        .when(foreign_image, reasons.MALFORMED_MANIFEST.value)
    )
    detail = (
        F.when(array, F.lit(ARRAY_DETAIL))
        .when(corrupt, F.lit(UNPARSEABLE_DETAIL))
        .when(
            foreign_version,
            F.format_string(
                f"schema_version %d is not supported (expected {contracts.MANIFEST_SCHEMA_VERSION})", version
            ),
        )
        .when(missing != "", F.concat(F.lit("missing required field(s): "), missing))
        .when(bad_id, F.lit(BAD_IMAGE_ID_DETAIL))
        .when(bad_dt, F.lit(BAD_DT_DETAIL))
        .when(outside, F.lit(OUTSIDE_LAKE_DETAIL))
        .when(foreign_image, F.lit(FOREIGN_IMAGE_DETAIL))
    )
    return reason, detail


def is_partition_date(value: Column) -> Column:
    """`value` is a real YYYY-MM-DD calendar day (the length check: Java's `$` also matches before a newline).

    The pattern alone would let `2024-13-45` through; parsing it as a date (null when it is not one, under
    ANSI mode too) rejects it, with no UDF.
    """
    return (
        value.rlike(contracts.DT_PATTERN)
        & (F.length(value) == len("YYYY-MM-DD"))
        & F.try_to_timestamp(value, F.lit("yyyy-MM-dd")).isNotNull()
    )


def safe_image_id() -> Column:
    """The row's image id, only when it has the expected shape; else from the manifest file name."""
    from_name = F.regexp_extract(F.col(MANIFEST_NAME_COLUMN), MANIFEST_NAME_PATTERN, 1)
    return F.coalesce(
        F.when(F.col("image_id").rlike(JAVA_IMAGE_ID_PATTERN), F.col("image_id")),
        F.when(from_name != "", from_name),
    )


def batch_row_columns(lake_uri: str) -> list[Column]:
    """The select list from manifest rows to what the featurizing worker needs, errors classified.

    Built once per query (Column expressions are reusable): building them costs
    py4j round trips that would otherwise be paid on every micro-batch. An
    unusable manifest keeps only what is safe to echo: an image_id of the
    expected shape (or the file's), its image_uri unless the record was
    unparseable.
    """
    reason, detail = error_reason(lake_uri)
    is_error = reason.isNotNull()
    computed = {
        "image_id": F.when(is_error, safe_image_id()).otherwise(F.col("image_id")),
        "image_uri": F.when(is_error & F.col(CORRUPT_RECORD_COLUMN).isNotNull(), F.lit(None)).otherwise(
            F.col("image_uri")
        ),
        REASON_COLUMN: reason,
        DETAIL_COLUMN: detail,
    }
    return [computed.get(name, F.col(name)).alias(name) for name in WORKER_INPUT_COLUMNS]


# --- Featurization -------------------------------------------------------------------------------


def featurized_schema():
    return struct_type(WORKER_ROW_FIELDS)


@dataclass(frozen=True)
class WorkerContext:
    """What each featurizing task needs: broadcasts, sizes and the model-build counter."""

    spec_broadcast: object
    projection_broadcast: object
    inference_batch_size: int
    cores_per_task: int
    model_builds: object  # a Spark accumulator
    image_read_timeout_seconds: float


def featurize_partition(context: WorkerContext, classifier_broadcast=None):
    """The mapInPandas function: one output row per manifest row, features (and prediction) or error.

    `classifier_broadcast` is the batch's classifier (classifier_swap); None leaves the predictions null.
    """

    def featurize(frames: Iterator) -> Iterator:
        import pandas as pd

        from streaming_job.featurizer.featurize import featurize_uris
        from streaming_job.featurizer.worker_cache import (
            cached_classifier,
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
        reader = cached_image_reader(context.cores_per_task, context.image_read_timeout_seconds)
        classifier = cached_classifier(classifier_broadcast) if classifier_broadcast is not None else None
        for frame in frames:
            usable = frame[REASON_COLUMN].isna().to_numpy()
            result = featurize_uris(frame.loc[usable, "image_uri"].tolist(), featurizer, projection, reader)
            out = frame.reindex(columns=FEATURIZED_COLUMNS)
            out["processed_at"] = contracts.iso_utc(utc_now())
            out["features"] = pd.Series(scatter(usable, result.features), index=out.index, dtype=object)
            out["pca_residual"] = scatter(usable, result.residuals)
            out["model_version"] = scatter(usable, [projection.model_version] * len(result.errors))
            out["pca_version"] = scatter(usable, [projection.pca_version] * len(result.errors))
            labels, confidences, versions = predict_rows(classifier, result.features)
            out["predicted_label"] = scatter(usable, labels)
            out["prediction_confidence"] = scatter(usable, confidences)
            out["classifier_version"] = scatter(usable, versions)
            out[REASON_COLUMN] = scatter(usable, result.reasons, base=frame[REASON_COLUMN].tolist())
            out[DETAIL_COLUMN] = scatter(usable, result.details, base=frame[DETAIL_COLUMN].tolist())
            yield out

    return featurize


def scatter(mask, values: list, base: list | None = None) -> list:
    """`base` (default all None) with the rows where `mask` is true set to `values`, in order."""
    column = list(base) if base is not None else [None] * len(mask)
    for position, value in zip(mask.nonzero()[0], values, strict=True):
        column[position] = value
    return column


def featurize_manifests(
    rows: DataFrame, context: WorkerContext, partitions: int, classifier_broadcast=None
) -> DataFrame:
    """Featurize a batch's manifest rows (batch_row_columns) in at most `partitions` tasks.

    The file scan already splits a batch into about one partition per core
    (by bytes; see session.LOCAL_CONF), so the partitions are only coalesced
    (many small scan partitions on a cluster become one task per core), never
    shuffled: a shuffle would put a whole stage, with the workers idle, between
    reading the manifests and featurizing them. Duplicate image_ids, which the
    key layout rules out, are dropped by split_outcome.
    """
    return rows.coalesce(partitions).mapInPandas(
        featurize_partition(context, classifier_broadcast), schema=featurized_schema()
    )


# --- Sink ----------------------------------------------------------------------------------------


class MicroBatchWriter:
    """The foreachBatch function: one Spark job per micro-batch, then the tables appended by the driver.

    Classification, featurization and PCA run in that one job; its output (k
    floats per image) is collected as Arrow and split, counted and appended
    here, so no further job is planned for statistics or the two outputs.
    """

    def __init__(
        self,
        spark: SparkSession,
        config: StreamConfig,
        context: WorkerContext,
        board: BatchStatsBoard,
        sink: TableSink,
        checkpoint_uri: str,
        classifier_swap: ClassifierSwap | None = None,
    ) -> None:
        """`checkpoint_uri`: the query's checkpoint, where the batch's files are listed (0-byte
        manifests, which Spark's scan skips, become error rows)."""
        self.spark = spark
        self.checkpoint_uri = checkpoint_uri
        self.paths = HadoopPaths(spark)
        self.context = context
        self.board = board
        self.sink = sink
        self.classifier_swap = classifier_swap
        self.spark_context = spark.sparkContext
        self.row_columns = batch_row_columns(config.lake)
        self._query_id: str | None = None

    def query_id(self) -> str:
        """The running query's id: Spark keeps it in the checkpoint, so a restart finds the same one."""
        if self._query_id is None:
            self._query_id = next(
                str(query.id) for query in self.spark.streams.active if query.name == QUERY_NAME
            )
        return self._query_id

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        self.board.begin(batch_id, utc_now())
        builds_before = self.context.model_builds.value
        # The batch boundary: a classifier published since the last batch is used from this one on.
        classifier = self.classifier_swap.for_batch() if self.classifier_swap is not None else None
        rows = batch.select(*self.row_columns)
        width = current_coalesce_width(self.spark_context)
        outcome = split_outcome(featurize_manifests(rows, self.context, width, classifier).toArrow())
        empty = empty_manifests_of_batch(self.paths, self.checkpoint_uri, batch_id)
        outcome = outcome.with_errors(*empty_manifest_errors(empty, utc_now()))
        written = self.sink.write(
            outcome.features, outcome.errors, self.query_id(), batch_id, outcome.error_owners
        )
        stats = outcome.stats(
            model_builds=self.context.model_builds.value - builds_before,
            already_in_table=written.already_in_table,
            feature_rows=written.feature_rows_in_table,
            error_rows=written.error_rows_in_table,
            low_confidence=LOW_CONFIDENCE,
        )
        self.board.record(batch_id, stats)
        log.info(
            "batch %d written: %d manifests, %d feature rows (%d already in the table), %d error rows",
            batch_id,
            stats.manifest_rows,
            stats.feature_rows,
            stats.already_in_table,
            stats.error_rows,
        )
