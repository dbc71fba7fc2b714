"""No personal value reaches a log line, a metric, a manifest, a quarantine record or a clean image."""

from __future__ import annotations

import logging
from urllib.parse import unquote

from botocore.exceptions import EndpointConnectionError

from .bad_inputs import jpeg_with_personal_metadata
from .helpers import LAKE_URI, PERSONAL_METADATA, TEST_PSEUDONYM_KEY, cold_start, sqs_event

# A phone-style file name: it holds a person's name and the exact capture time.
PERSONAL_KEY = "uploads/Jane Doe IMG_20250613_184753.jpg"
FORBIDDEN = (
    PERSONAL_METADATA["user-id"],
    PERSONAL_METADATA["device-id"],
    PERSONAL_METADATA["captured-at"],
    "18:47:53",  # capture time, local
    "16:47:53",  # capture time, UTC
    "20250613_184753",
    PERSONAL_METADATA["lat"],
    PERSONAL_METADATA["lon"],
    "Jane",
    "Doe",
    "IMG_",
    TEST_PSEUDONYM_KEY,
)


def test_no_personal_value_in_any_log_metric_or_output(
    aws, monkeypatch, lambda_context, sample_image_paths, caplog, capsys
):
    # GIVEN a debug-level container and uploads carrying personal data: an accepted photo with EXIF GPS,
    # one with invalid metadata, one whose read fails with an error that quotes the URL, one poison message
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    app = cold_start({"LAKE_URI": LAKE_URI, "PSEUDONYM_KEY": TEST_PSEUDONYM_KEY}, monkeypatch)
    photo = jpeg_with_personal_metadata(sample_image_paths[0].read_bytes())
    bad_label = {**PERSONAL_METADATA, "label": "<b>Jane Doe</b>", "lat": PERSONAL_METADATA["lat"] + "x"}
    invalid_key = "uploads/Jane Doe IMG_20250613_184753 (1).jpg"
    failing_key = "uploads/Jane Doe IMG_20250613_184753 (2).jpg"
    event = sqs_event(
        [
            (PERSONAL_KEY, aws.upload(PERSONAL_KEY, photo, PERSONAL_METADATA), len(photo)),
            (invalid_key, aws.upload(invalid_key, photo, bad_label), len(photo)),
            (failing_key, aws.upload(failing_key, photo, PERSONAL_METADATA), len(photo)),
        ]
    )
    event["Records"].append({**event["Records"][0], "messageId": "poison", "body": f"{{{PERSONAL_KEY}"})

    def unreachable_endpoint(params, **_):
        if unquote(params["url_path"]).endswith(failing_key.removeprefix("uploads")):
            raise EndpointConnectionError(endpoint_url=params["url"])

    app.S3_CLIENT.meta.events.register_first("before-call.s3.GetObject", unreachable_endpoint)
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="ingest")
    caplog.set_level(logging.DEBUG, logger="aws_lambda_powertools")
    capsys.readouterr()

    # WHEN the batch is handled
    response = app.lambda_handler(event, lambda_context)

    # THEN the outcomes are as expected (so the run did exercise every path) ...
    assert sorted(item["itemIdentifier"] for item in response["batchItemFailures"]) == sorted(
        [event["Records"][2]["messageId"], "poison"]
    )
    lake = {key: aws.lake_object(key) for key in aws.lake_keys()}
    assert sum(key.endswith(".jpg") for key in lake) == 1
    assert sum("/manifests/" in key for key in lake) == 1
    assert sum("/quarantine/" in key for key in lake) == 1

    # ... and no personal value appears in any log line (with all extra fields), metric or output
    log_lines = [app.logger.registered_formatter.format(record) for record in caplog.records]
    assert any("upload accepted" in line for line in log_lines)
    assert any("processing failed" in line and "EndpointConnectionError" in line for line in log_lines)
    printed = capsys.readouterr()
    haystacks = {
        "logs": "\n".join(log_lines),
        "stdout (EMF metrics, Powertools logs)": printed.out + printed.err,
        "handler response": repr(response),
        "lake keys": "\n".join(lake),
        **{key: data.decode("latin-1") for key, data in lake.items()},
    }
    leaks = [(where, value) for where, text in haystacks.items() for value in FORBIDDEN if value in text]
    assert leaks == []
