"""Configuration of the streaming job: one definition of its flags.

`fruits stream`, `streaming_job/main.py` (spark-submit) and `fruits deploy`
(which builds the EMR step's argument list) all use `StreamConfig`, so the
flags cannot drift apart. Every flag has an environment-variable default
(`FRUITS_<NAME>`) and is validated once, at start-up, with a clear message.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields, replace

from fruits_core import contracts
from fruits_core.errors import ConfigError
from fruits_core.lake_uris import add_lake_argument, join_uri, required_lake_uri, validate_lake_uri

CLEAN_SOURCE_MODES = ("off", "archive", "delete")
# The heartbeat alarm sums heartbeats over 5-minute periods: at most 120 s apart, each period holds two.
MAX_HEARTBEAT_SECONDS = 120.0
MAX_IMAGE_READ_TIMEOUT_SECONDS = 3600.0
# A week: a longer epoch lets the checkpoint hold (and every restart load) more than a week of manifests.
MAX_CHECKPOINT_EPOCH_HOURS = 168.0


@dataclass(frozen=True)
class StreamConfig:
    lake: str
    checkpoint: str
    featurizer: str
    pca: str
    # Each trigger commits to the tables; a commit costs ~0.1 s plus ~2.2 ms per snapshot the table keeps
    # (pyiceberg copies the metadata), measured by benchmarks/commit_cost.py: at 60 s the commit stays
    # under 10 % of the batch with a day of snapshots kept (docs/performance.md#the-tables-commit).
    trigger_seconds: float = 60.0
    available_now: bool = False
    # Under a backlog, bigger batches amortise the ~0.8 s fixed cost of a micro-batch: the LiteRT runtime
    # featurizes ~200 images/s per core, so 8000 keeps it under 5 % on 2 cores (docs/performance.md).
    max_files_per_trigger: int = 8000
    clean_source: str = "off"
    inference_batch_size: int = 64
    metrics_namespace: str = "Fruits/Stream"
    stage: str = "local"
    cloudwatch_log_group: str | None = None
    # The driver's heartbeat (liveness, age of the batch in flight, backlog), batch or not.
    heartbeat_seconds: float = 60.0
    # A batch in flight longer is HUNG for `fruits status` (the alarm has its own template parameter).
    hung_after_seconds: float = 900.0
    # An image read that takes longer is abandoned: error row image_read_timeout.
    image_read_timeout_seconds: float = 60.0
    # The checkpoint moves to a fresh epoch this often, bounding its size (checkpoint_epochs.py).
    checkpoint_epoch_hours: float = 24.0
    # Start a new features table when the model differs from the current table's (table_versions).
    new_model_table: bool = False
    # Score each features row with the lake's published classifier (streaming_job.scoring.classifier_swap);
    # off only to measure the stream without it (`fruits bench`).
    predictions: bool = True

    @property
    def manifests_uri(self) -> str:
        return join_uri(self.lake, contracts.MANIFESTS_PREFIX)

    @property
    def status_uri(self) -> str:
        return join_uri(self.lake, contracts.STATUS_PREFIX)

    @property
    def archive_uri(self) -> str:
        return join_uri(self.lake, contracts.MANIFESTS_ARCHIVE_PREFIX)

    @property
    def stop_marker_uri(self) -> str:
        return join_uri(self.lake, contracts.STOP_MARKER_KEY)

    def to_cli_args(self) -> list[str]:
        """The flags that rebuild this config: what an EMR step passes to main.py."""
        args = [
            "--lake",
            self.lake,
            "--checkpoint",
            self.checkpoint,
            "--featurizer",
            self.featurizer,
            "--pca",
            self.pca,
            "--trigger",
            _format_number(self.trigger_seconds),
            "--max-files-per-trigger",
            str(self.max_files_per_trigger),
            "--clean-source",
            self.clean_source,
            "--inference-batch-size",
            str(self.inference_batch_size),
            "--metrics-namespace",
            self.metrics_namespace,
            "--stage",
            self.stage,
            "--heartbeat",
            _format_number(self.heartbeat_seconds),
            "--hung-after",
            _format_number(self.hung_after_seconds),
            "--image-read-timeout",
            _format_number(self.image_read_timeout_seconds),
            "--checkpoint-epoch-hours",
            _format_number(self.checkpoint_epoch_hours),
        ]
        if self.cloudwatch_log_group:
            args += ["--cloudwatch-log-group", self.cloudwatch_log_group]
        if self.available_now:
            args.append("--available-now")
        if self.new_model_table:
            args.append("--new-model-table")
        if not self.predictions:
            args.append("--no-predictions")
        return args


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"FRUITS_{name}", default)


def _default(field_name: str) -> str:
    """StreamConfig's default of a field, as a flag string that argparse converts (or rejects, from env)."""
    default = next(field.default for field in fields(StreamConfig) if field.name == field_name)
    return _format_number(default) if isinstance(default, float) else str(default)


def add_stream_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the stream's flags on a parser (defaults come from FRUITS_* env vars)."""
    add_lake_argument(parser)
    parser.add_argument(
        "--checkpoint",
        default=_env("CHECKPOINT"),
        help="checkpoint root; the query's checkpoint is <checkpoint>/epoch=<n>/ "
        "(default <lake>/checkpoints/features)",
    )
    parser.add_argument(
        "--checkpoint-epoch-hours",
        type=float,
        default=_env("CHECKPOINT_EPOCH_HOURS", _default("checkpoint_epoch_hours")),
        help="start a fresh checkpoint under <checkpoint>/epoch=<n+1>/ (between two micro-batches) once "
        "the current one is this old, so its size and the restart time stay bounded "
        f"(default {_default('checkpoint_epoch_hours')}, at most {MAX_CHECKPOINT_EPOCH_HOURS:g})",
    )
    parser.add_argument(
        "--featurizer",
        default=_env("FEATURIZER"),
        help=f"featurizer artifact (default <lake>/{contracts.FEATURIZER_KEY})",
    )
    parser.add_argument(
        "--pca", default=_env("PCA"), help=f"fitted PCA directory (default <lake>/{contracts.PCA_KEY})"
    )
    parser.add_argument(
        "--trigger",
        dest="trigger_seconds",
        type=float,
        default=_env("TRIGGER_SECONDS", _default("trigger_seconds")),
        help=f"processing-time trigger interval in seconds (default {_default('trigger_seconds')})",
    )
    parser.add_argument(
        "--available-now",
        action="store_true",
        default=_env("AVAILABLE_NOW", "false").lower() == "true",
        help="process the backlog, then stop (backfills)",
    )
    parser.add_argument(
        "--new-model-table",
        action="store_true",
        default=_env("NEW_MODEL_TABLE", "false").lower() == "true",
        help="when the featurizer/PCA differ from the features table's, keep that table as "
        "fruits.features_<its pca_version> and start a new fruits.features (else the stream refuses)",
    )
    parser.add_argument(
        "--max-files-per-trigger",
        type=int,
        default=_env("MAX_FILES_PER_TRIGGER", _default("max_files_per_trigger")),
        help=f"most manifests read per micro-batch (default {_default('max_files_per_trigger')}); "
        "a batch takes what arrived up to this cap, so it only bounds batches under a backlog",
    )
    parser.add_argument(
        "--clean-source",
        choices=CLEAN_SOURCE_MODES,
        default=_env("CLEAN_SOURCE", _default("clean_source")),
        help="what to do with processed manifests: off, archive (to "
        f"<lake>/{contracts.MANIFESTS_ARCHIVE_PREFIX}) or delete (default {_default('clean_source')})",
    )
    parser.add_argument(
        "--inference-batch-size",
        type=int,
        default=_env("INFERENCE_BATCH_SIZE", _default("inference_batch_size")),
        help=f"images read and featurized together: one Keras forward pass, or split across the LiteRT "
        f"interpreters (default {_default('inference_batch_size')})",
    )
    parser.add_argument(
        "--metrics-namespace",
        default=_env("METRICS_NAMESPACE", _default("metrics_namespace")),
        help="CloudWatch namespace of the stream's metrics",
    )
    parser.add_argument(
        "--stage",
        default=_env("STAGE", _default("stage")),
        help=f"deployment stage, the Stage dimension of every metric (default {_default('stage')})",
    )
    parser.add_argument(
        "--cloudwatch-log-group",
        default=_env("CLOUDWATCH_LOG_GROUP"),
        help="send each progress event as a CloudWatch embedded-metric-format record to this "
        "log group (on AWS; unset locally)",
    )

    parser.add_argument(
        "--heartbeat",
        dest="heartbeat_seconds",
        type=float,
        default=_env("HEARTBEAT_SECONDS", _default("heartbeat_seconds")),
        help=f"seconds between the driver's heartbeats, sent whether a batch runs or not "
        f"(default {_default('heartbeat_seconds')}; at most {MAX_HEARTBEAT_SECONDS:g}, so that every "
        "5-minute period of the heartbeat alarm holds at least two)",
    )
    parser.add_argument(
        "--no-predictions",
        dest="predictions",
        action="store_false",
        help="leave predicted_label, prediction_confidence and classifier_version null: no classifier "
        "is read from <lake>/models/classifier/ (to measure the stream without scoring)",
    )
    parser.add_argument(
        "--hung-after",
        dest="hung_after_seconds",
        type=float,
        default=_env("HUNG_AFTER_SECONDS", _default("hung_after_seconds")),
        help=f"a batch in flight for longer is reported HUNG by `fruits status` "
        f"(default {_default('hung_after_seconds')})",
    )
    parser.add_argument(
        "--image-read-timeout",
        dest="image_read_timeout_seconds",
        type=float,
        default=_env("IMAGE_READ_TIMEOUT_SECONDS", _default("image_read_timeout_seconds")),
        help=f"seconds an image read may take before it is abandoned as an error row image_read_timeout "
        f"(default {_default('image_read_timeout_seconds')})",
    )


def config_from_args(args: argparse.Namespace) -> StreamConfig:
    """Build and validate the config; raise ConfigError with a clear message."""
    lake = required_lake_uri(args.lake)
    if args.trigger_seconds <= 0:
        raise ConfigError(f"--trigger must be > 0 seconds, got {args.trigger_seconds}")
    if args.max_files_per_trigger < 1:
        raise ConfigError(f"--max-files-per-trigger must be >= 1, got {args.max_files_per_trigger}")
    if not 0 < args.checkpoint_epoch_hours <= MAX_CHECKPOINT_EPOCH_HOURS:
        raise ConfigError(
            f"--checkpoint-epoch-hours must be in (0, {MAX_CHECKPOINT_EPOCH_HOURS:g}], "
            f"got {args.checkpoint_epoch_hours}"
        )
    if not 1 <= args.inference_batch_size <= 1024:
        raise ConfigError(f"--inference-batch-size must be in 1..1024, got {args.inference_batch_size}")
    if not args.stage or not args.stage.replace("-", "").isalnum():
        raise ConfigError(f"--stage must be alphanumeric (dashes allowed), got {args.stage!r}")
    if not 1 <= args.heartbeat_seconds <= MAX_HEARTBEAT_SECONDS:
        raise ConfigError(
            f"--heartbeat must be in 1..{MAX_HEARTBEAT_SECONDS:g} seconds, got {args.heartbeat_seconds}"
        )
    if args.hung_after_seconds <= args.heartbeat_seconds:
        raise ConfigError(
            f"--hung-after must be longer than --heartbeat ({args.heartbeat_seconds:g} s), "
            f"got {args.hung_after_seconds}"
        )
    if not 0 < args.image_read_timeout_seconds <= MAX_IMAGE_READ_TIMEOUT_SECONDS:
        raise ConfigError(
            f"--image-read-timeout must be in (0, {MAX_IMAGE_READ_TIMEOUT_SECONDS:g}] seconds, "
            f"got {args.image_read_timeout_seconds}"
        )
    if args.clean_source not in CLEAN_SOURCE_MODES:
        raise ConfigError(f"--clean-source must be one of {CLEAN_SOURCE_MODES}, got {args.clean_source!r}")
    config = StreamConfig(
        lake=lake,
        checkpoint=args.checkpoint or join_uri(lake, contracts.CHECKPOINTS_PREFIX, "features"),
        featurizer=args.featurizer or join_uri(lake, contracts.FEATURIZER_KEY),
        pca=args.pca or join_uri(lake, contracts.PCA_KEY),
        trigger_seconds=args.trigger_seconds,
        available_now=args.available_now,
        max_files_per_trigger=args.max_files_per_trigger,
        clean_source=args.clean_source,
        inference_batch_size=args.inference_batch_size,
        metrics_namespace=args.metrics_namespace,
        stage=args.stage,
        cloudwatch_log_group=args.cloudwatch_log_group or None,
        heartbeat_seconds=args.heartbeat_seconds,
        hung_after_seconds=args.hung_after_seconds,
        image_read_timeout_seconds=args.image_read_timeout_seconds,
        new_model_table=args.new_model_table,
        predictions=args.predictions,
        checkpoint_epoch_hours=args.checkpoint_epoch_hours,
    )
    # Each in the one spelling (fruits_core.lake_uris), as Spark and pyiceberg will take it.
    spelled = {
        name: validate_lake_uri(getattr(config, name), f"--{name}")
        for name in ("checkpoint", "featurizer", "pca")
    }
    config = replace(config, **spelled)
    return config
