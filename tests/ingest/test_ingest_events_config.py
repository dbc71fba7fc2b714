"""Event parsing (URL-decoded keys, test events, poison bodies) and configuration validation."""

from __future__ import annotations

import json

import pytest
from fruits_ingest.config import (
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_UPLOAD_BYTES,
    ConfigError,
    IngestConfig,
    load_config,
)
from fruits_ingest.events import (
    PoisonMessage,
    UnsupportedEvent,
    classify_event,
    refs_from_s3_event,
    refs_from_sqs_body,
)

from operations import sample_events

from .helpers import UPLOADS_BUCKET, load_event


def _s3_event_with_key(encoded_key: str) -> dict:
    event = load_event("s3-put.json")
    event["Records"][0]["s3"]["object"]["key"] = encoded_key
    return event


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("uploads/apple+0.jpg", "uploads/apple 0.jpg"),
        ("uploads/mangue+d%27%C3%A9t%C3%A9.jpg", "uploads/mangue d'été.jpg"),
        ("uploads/a%2Bb.jpg", "uploads/a+b.jpg"),  # a literal plus arrives as %2B
        ("uploads/100%25+real.jpg", "uploads/100% real.jpg"),
        ("uploads/%F0%9F%8D%91.png", "uploads/🍑.png"),
    ],
)
def test_object_keys_are_url_decoded(encoded, decoded):
    # GIVEN an S3 event whose key is URL-encoded as S3 sends it WHEN parsed THEN the key is decoded once
    (ref,) = refs_from_s3_event(_s3_event_with_key(encoded))
    assert ref.key == decoded
    assert ref.uri == f"s3://{UPLOADS_BUCKET}/{decoded}"


def test_s3_put_event_reference_carries_identity_fields():
    (ref,) = refs_from_s3_event(load_event("s3-put.json"))
    record = load_event("s3-put.json")["Records"][0]
    assert ref.bucket == UPLOADS_BUCKET
    assert ref.version == record["s3"]["object"]["versionId"]  # the uploads bucket is versioned
    assert ref.etag == record["s3"]["object"]["eTag"]
    assert ref.size == record["s3"]["object"]["size"]
    assert ref.sequencer == record["s3"]["object"]["sequencer"]
    assert ref.event_time.isoformat() == "2025-06-14T09:21:37.512000+00:00"


def test_version_id_wins_over_etag():
    event = load_event("s3-put.json")
    event["Records"][0]["s3"]["object"]["versionId"] = "3HL4kqtJlcpXroDTDmjVBH40Nrjfkd"
    (ref,) = refs_from_s3_event(event)
    assert ref.version == "3HL4kqtJlcpXroDTDmjVBH40Nrjfkd"


def test_removal_events_are_ignored():
    event = load_event("s3-put.json")
    event["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    assert refs_from_s3_event(event) == []


def test_sqs_bodies_of_committed_events_parse():
    bodies = [record["body"] for record in load_event("sqs-s3-notification.json")["Records"]]
    keys = [ref.key for body in bodies for ref in refs_from_sqs_body(body)]
    assert keys == [sample_events.LEMON.key, sample_events.MANGO.key]


def test_s3_test_event_yields_nothing():
    (record,) = load_event("sqs-s3-test-event.json")["Records"]
    assert refs_from_sqs_body(record["body"]) == []


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        "[]",
        json.dumps({"Records": [{"eventSource": "aws:s3", "key": "uploads/Jane.jpg"}]}),
        "null",
    ],
)
def test_poison_bodies_raise_without_quoting_the_body(body):
    with pytest.raises(PoisonMessage) as raised:
        refs_from_sqs_body(body)
    assert "Jane" not in str(raised.value)


@pytest.mark.parametrize(
    ("event", "kind"),
    [(load_event("s3-put.json"), "s3"), (load_event("sqs-s3-notification.json"), "sqs")],
)
def test_classify_event(event, kind):
    assert classify_event(event) == kind


@pytest.mark.parametrize("event", [{}, {"Records": []}, {"Records": [{"eventSource": "aws:kinesis"}]}, []])
def test_unsupported_events_are_refused(event):
    with pytest.raises(UnsupportedEvent):
        classify_event(event)


def test_config_defaults():
    config = load_config({"LAKE_URI": "s3://fruits-lake/prefix/", "PSEUDONYM_KEY_PARAMETER": "/fruits/key"})
    assert config == IngestConfig(
        lake_uri="s3://fruits-lake/prefix",
        pseudonym_key=None,
        pseudonym_key_parameter="/fruits/key",
        max_upload_bytes=DEFAULT_MAX_UPLOAD_BYTES,
        max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS,
    )
    assert DEFAULT_MAX_UPLOAD_BYTES == 10 * 1024 * 1024 and DEFAULT_MAX_IMAGE_PIXELS == 40_000_000


def test_env_key_wins_over_parameter():
    config = load_config(
        {"LAKE_URI": "file:///tmp/lake", "PSEUDONYM_KEY": "k" * 16, "PSEUDONYM_KEY_PARAMETER": "/fruits/key"}
    )
    assert config.pseudonym_key == b"k" * 16


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"LAKE_URI": "s3://Bad_Bucket", "PSEUDONYM_KEY": "k" * 16}, "LAKE_URI must be"),
        ({"LAKE_URI": "file://relative/path", "PSEUDONYM_KEY": "k" * 16}, "LAKE_URI must be"),
        ({"LAKE_URI": "file:///", "PSEUDONYM_KEY": "k" * 16}, "LAKE_URI must be"),
        ({"LAKE_URI": "s3://lake", "PSEUDONYM_KEY_PARAMETER": "bad name!"}, "not a valid SSM parameter name"),
        ({"LAKE_URI": "s3://lake", "PSEUDONYM_KEY": "k" * 16, "MAX_UPLOAD_BYTES": "-1"}, "MAX_UPLOAD_BYTES"),
        (
            {"LAKE_URI": "s3://lake", "PSEUDONYM_KEY": "k" * 16, "MAX_UPLOAD_BYTES": str(10**9)},
            "between 1 and",
        ),
        (
            {"LAKE_URI": "s3://lake", "PSEUDONYM_KEY": "k" * 16, "PSEUDONYM_KEY_TTL_SECONDS": "86400"},
            "PSEUDONYM_KEY_TTL_SECONDS",
        ),
        (
            {"LAKE_URI": "s3://lake", "PSEUDONYM_KEY": "k" * 16, "RECORD_TIME_BUDGET_MS": "0"},
            "RECORD_TIME_BUDGET_MS",
        ),
        (
            {
                "LAKE_URI": "s3://lake",
                "PSEUDONYM_KEY": "k" * 16,
                "LABEL_VOCABULARY_FILE": "/nonexistent.json",
            },
            "LABEL_VOCABULARY_FILE: .* unreadable",
        ),
    ],
)
def test_invalid_settings_are_refused_with_the_variable_named(environ, message):
    with pytest.raises(ConfigError, match=message):
        load_config(environ)


def test_short_key_error_does_not_print_the_key():
    with pytest.raises(ConfigError) as refused:
        load_config({"LAKE_URI": "s3://lake", "PSEUDONYM_KEY": "secret-ish"})
    assert "secret-ish" not in str(refused.value)


def test_label_vocabulary_file_replaces_the_bundled_one(tmp_path):
    # GIVEN a vocabulary file with one label WHEN the config is loaded THEN only that label matches
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"quince": ["coing", "membrillo"]}), encoding="utf-8")
    config = load_config(
        {"LAKE_URI": "s3://lake", "PSEUDONYM_KEY": "k" * 16, "LABEL_VOCABULARY_FILE": str(path)}
    )
    assert config.label_vocabulary.labels == {"quince"}
    assert config.label_vocabulary.match("Membrillo") == "quince"
    assert config.label_vocabulary.match("apple") is None


def test_vocabulary_file_errors_name_the_variable(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"Not A Slug": []}), encoding="utf-8")
    with pytest.raises(ConfigError, match="LABEL_VOCABULARY_FILE: canonical label"):
        load_config({"LAKE_URI": "s3://lake", "PSEUDONYM_KEY": "k" * 16, "LABEL_VOCABULARY_FILE": str(path)})


def test_an_event_of_another_bucket_is_skipped_unread(
    aws, monkeypatch, lambda_context, seed_event_uploads, capsys
):
    # GIVEN a function told its uploads bucket, and events naming another one (misrouted or forged)
    from .helpers import LAKE_URI, TEST_PSEUDONYM_KEY, cold_start, failed_ids

    seed_event_uploads()
    app = cold_start(
        {"LAKE_URI": LAKE_URI, "PSEUDONYM_KEY": TEST_PSEUDONYM_KEY, "UPLOADS_BUCKET": "fruits-other-uploads"},
        monkeypatch,
    )
    # WHEN they are handled THEN each is skipped (no retry) and nothing is written
    event = aws.event("sqs-s3-notification.json")
    capsys.readouterr()
    assert failed_ids(app.lambda_handler(event, lambda_context)) == []
    assert aws.lake_keys() == []
    assert capsys.readouterr().out.count('"Reason":"foreign_bucket"') == len(event["Records"])


@pytest.mark.parametrize("value", ["/fruits/key\n", "/fruits/key\n/x"])
def test_an_ssm_parameter_name_with_a_newline_is_refused(value):
    from fruits_ingest.config import ConfigError, IngestConfig

    with pytest.raises(ConfigError, match="not a valid SSM parameter name"):
        IngestConfig(lake_uri="s3://bucket-name/lake", pseudonym_key_parameter=value)


def test_a_number_setting_in_another_script_is_refused():
    from fruits_ingest.config import ConfigError, int_setting

    with pytest.raises(ConfigError, match="whole number"):
        int_setting({"MAX_UPLOAD_BYTES": "\u0661\u0660"}, "MAX_UPLOAD_BYTES", 5)
