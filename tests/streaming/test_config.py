"""The stream's settings: flags, FRUITS_* environment defaults, validation, and the EMR round trip."""

from __future__ import annotations

import argparse

import pytest

from fruits_cli.stream import LOCAL_MASTER, default_master
from fruits_core.errors import ConfigError
from fruits_core.lake_uris import lake_uri_from_argument, validate_lake_uri
from streaming_job.config import StreamConfig, add_stream_arguments, config_from_args

LAKE = "s3://fruits-dev-lake/team"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_stream_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture(autouse=True)
def no_fruits_env(monkeypatch):
    """The developer's own FRUITS_* settings must not leak into these tests."""
    import os

    for name in [name for name in os.environ if name.startswith("FRUITS_")]:
        monkeypatch.delenv(name)


def test_to_cli_args_round_trips_through_the_stream_parser():
    # GIVEN a config with every field away from its default
    config = StreamConfig(
        lake=LAKE,
        checkpoint=f"{LAKE}/checkpoints/other",
        featurizer=f"{LAKE}/models/f.keras",
        pca=f"{LAKE}/models/pca-2",
        trigger_seconds=2.5,
        available_now=True,
        max_files_per_trigger=50,
        clean_source="archive",
        inference_batch_size=32,
        metrics_namespace="Fruits/Test",
        stage="prod",
        cloudwatch_log_group="/fruits/prod/stream",
        heartbeat_seconds=30.0,
        hung_after_seconds=1200.0,
        image_read_timeout_seconds=12.5,
        checkpoint_epoch_hours=0.5,
    )
    # WHEN it becomes the EMR step's arguments
    args = config.to_cli_args()
    # THEN they are exactly these (written out: what main.py receives on EMR)...
    assert args == [
        "--lake",
        "s3://fruits-dev-lake/team",
        "--checkpoint",
        "s3://fruits-dev-lake/team/checkpoints/other",
        "--featurizer",
        "s3://fruits-dev-lake/team/models/f.keras",
        "--pca",
        "s3://fruits-dev-lake/team/models/pca-2",
        "--trigger",
        "2.5",
        "--max-files-per-trigger",
        "50",
        "--clean-source",
        "archive",
        "--inference-batch-size",
        "32",
        "--metrics-namespace",
        "Fruits/Test",
        "--stage",
        "prod",
        "--heartbeat",
        "30",
        "--hung-after",
        "1200",
        "--image-read-timeout",
        "12.5",
        "--checkpoint-epoch-hours",
        "0.5",
        "--cloudwatch-log-group",
        "/fruits/prod/stream",
        "--available-now",
    ]
    # AND the stream's own parser rebuilds the same config from them
    assert config_from_args(parse(*args)) == config


def test_defaults_derive_every_location_from_the_lake():
    config = config_from_args(parse("--lake", LAKE + "/"))
    assert config == StreamConfig(
        lake=LAKE,
        checkpoint=f"{LAKE}/checkpoints/features",
        featurizer=f"{LAKE}/models/featurizer.tflite",
        pca=f"{LAKE}/models/pca",
    )
    assert config.trigger_seconds == 60.0
    assert config.available_now is False
    assert config.clean_source == "off"
    assert config.stage == "local"


def test_fruits_environment_variables_are_the_defaults(monkeypatch):
    # GIVEN FRUITS_* settings in the environment
    monkeypatch.setenv("FRUITS_LAKE", "file:///srv/lake")
    monkeypatch.setenv("FRUITS_TRIGGER_SECONDS", "3")
    monkeypatch.setenv("FRUITS_AVAILABLE_NOW", "true")
    monkeypatch.setenv("FRUITS_MAX_FILES_PER_TRIGGER", "7")
    monkeypatch.setenv("FRUITS_CLEAN_SOURCE", "delete")
    monkeypatch.setenv("FRUITS_INFERENCE_BATCH_SIZE", "16")
    monkeypatch.setenv("FRUITS_STAGE", "staging")
    monkeypatch.setenv("FRUITS_CLOUDWATCH_LOG_GROUP", "/fruits/staging/stream")
    monkeypatch.setenv("FRUITS_HEARTBEAT_SECONDS", "20")
    monkeypatch.setenv("FRUITS_HUNG_AFTER_SECONDS", "300")
    monkeypatch.setenv("FRUITS_IMAGE_READ_TIMEOUT_SECONDS", "5")
    monkeypatch.setenv("FRUITS_CHECKPOINT_EPOCH_HOURS", "6")
    # WHEN the parser is built and given no flags
    config = config_from_args(parse())
    # THEN every setting comes from its variable
    assert (config.lake, config.trigger_seconds, config.available_now) == ("file:///srv/lake", 3.0, True)
    assert (config.max_files_per_trigger, config.clean_source, config.inference_batch_size) == (
        7,
        "delete",
        16,
    )
    assert (config.stage, config.cloudwatch_log_group) == ("staging", "/fruits/staging/stream")
    assert (config.heartbeat_seconds, config.hung_after_seconds, config.image_read_timeout_seconds) == (
        20.0,
        300.0,
        5.0,
    )
    assert config.checkpoint_epoch_hours == 6.0
    # AND a flag still wins over its variable
    assert config_from_args(parse("--stage", "prod")).stage == "prod"


def test_a_malformed_environment_number_is_refused_by_the_parser(monkeypatch):
    monkeypatch.setenv("FRUITS_MAX_FILES_PER_TRIGGER", "many")
    with pytest.raises(SystemExit):
        parse("--lake", LAKE)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), r"--lake \(or FRUITS_LAKE\) is required"),
        (("--lake", "s3://Bad_Bucket"), "s3://bucket"),
        (("--lake", "file:///"), "file:///absolute/path"),
        (("--lake", LAKE, "--trigger", "0"), "--trigger must be > 0"),
        (("--lake", LAKE, "--max-files-per-trigger", "0"), "--max-files-per-trigger must be >= 1"),
        (("--lake", LAKE, "--inference-batch-size", "2000"), "--inference-batch-size must be in 1..1024"),
        (("--lake", LAKE, "--stage", "dev prod"), "--stage must be alphanumeric"),
        (
            ("--lake", LAKE, "--checkpoint-epoch-hours", "0"),
            r"--checkpoint-epoch-hours must be in \(0, 168\]",
        ),
        (
            ("--lake", LAKE, "--checkpoint-epoch-hours", "200"),
            r"--checkpoint-epoch-hours must be in \(0, 168\]",
        ),
        (("--lake", LAKE, "--checkpoint-epoch-hours", "nan"), "--checkpoint-epoch-hours must be in"),
        (("--lake", LAKE, "--pca", "http://elsewhere/pca"), "s3://bucket"),
        (("--lake", LAKE, "--heartbeat", "0.5"), "--heartbeat must be in 1..120 seconds"),
        (("--lake", LAKE, "--heartbeat", "300"), "--heartbeat must be in 1..120 seconds"),
        (("--lake", LAKE, "--heartbeat", "60", "--hung-after", "60"), "--hung-after must be longer"),
        (("--lake", LAKE, "--image-read-timeout", "0"), "--image-read-timeout must be in"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(argv, message):
    with pytest.raises(ConfigError, match=message):
        config_from_args(parse(*argv))


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://fruits-lake", "s3://fruits-lake"),
        ("s3://fruits-lake/prefix/", "s3://fruits-lake/prefix"),
        ("file:///tmp/lake/", "file:///tmp/lake"),
    ],
)
def test_lake_uris_are_accepted_without_a_trailing_slash(uri, expected):
    assert validate_lake_uri(uri) == expected


def test_a_relative_lake_folder_is_accepted_as_its_absolute_file_uri(tmp_path, monkeypatch):
    # GIVEN a newcomer in the repository root typing `--lake work/demo/lake`
    monkeypatch.chdir(tmp_path)
    config = config_from_args(parse("--lake", "work/demo/lake"))
    # THEN the stream (and every later step) sees one absolute file:// URI
    assert config.lake == (tmp_path / "work" / "demo" / "lake").as_uri()
    assert config.checkpoint.startswith(config.lake + "/")
    assert lake_uri_from_argument("s3://fruits-lake/") == "s3://fruits-lake"
    with pytest.raises(ConfigError, match="--lake must be"):
        lake_uri_from_argument("hdfs://namenode/lake")


@pytest.mark.parametrize(
    "uri", ["s3://Bad_Bucket", "s3://", "s3://ab", "file:///", "file:////", "file://host/lake", "/tmp/lake"]
)
def test_lake_uris_that_name_no_lake_are_refused(uri):
    with pytest.raises(ConfigError, match="LAKE_URI must be"):
        validate_lake_uri(uri, "LAKE_URI")


def test_default_master_is_local_unless_spark_submit_owns_the_interpreter(monkeypatch):
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    assert default_master() == LOCAL_MASTER == "local[*]"
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "40123")
    assert default_master() is None
