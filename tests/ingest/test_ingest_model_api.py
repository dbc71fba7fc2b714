"""The upload API's GET /model: a signed-in app gets short-lived download URLs of the current app model.

moto plays S3 (the lake bucket, its pointer and model); the HTTP API's JWT authorizer is AWS's, so the
tests hand the handler the claims it would pass on, as in test_ingest_upload_api.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from fruits_core import contracts

from .helpers import LAKE_BUCKET, LAKE_URI, cold_start

LAKE_PREFIX = LAKE_URI.split("/", 3)[3] + "/"
SUBJECT = "0b6c1c9e-5f43-4a8e-9a51-0d9c6f1e2a77"
MODEL = b"TFL3 pretend flatbuffer bytes of the app model"
VERSION = "clf-42-pca-k64-abc-0123456789ab"


def request(claims: dict | None) -> dict:
    context = {"authorizer": {"jwt": {"claims": claims, "scopes": None}}} if claims is not None else {}
    return {
        "version": "2.0",
        "routeKey": "GET /model",
        "requestContext": {**context, "http": {"method": "GET", "path": "/model"}},
        "isBase64Encoded": False,
    }


def publish(aws, pointer: dict | bytes) -> None:
    folder = f"{LAKE_PREFIX}{contracts.APP_MODEL_PREFIX}{VERSION}/"
    aws.s3.put_object(Bucket=LAKE_BUCKET, Key=f"{folder}fruits.tflite", Body=MODEL)
    aws.s3.put_object(Bucket=LAKE_BUCKET, Key=f"{folder}labels.txt", Body=b"apple\nlemon\n")
    body = pointer if isinstance(pointer, bytes) else json.dumps(pointer).encode()
    aws.s3.put_object(Bucket=LAKE_BUCKET, Key=f"{LAKE_PREFIX}{contracts.APP_MODEL_LATEST_KEY}", Body=body)


def pointer(**changes) -> dict:
    return {
        "version": VERSION,
        "model": f"{contracts.APP_MODEL_PREFIX}{VERSION}/fruits.tflite",
        "labels": f"{contracts.APP_MODEL_PREFIX}{VERSION}/labels.txt",
        "sha256": hashlib.sha256(MODEL).hexdigest(),
        "size": len(MODEL),
        "input": {"shape": [1, 224, 224, 3], "dtype": "uint8"},
        **changes,
    }


@pytest.fixture
def handler(aws, monkeypatch):
    return cold_start({"LAKE_URI": LAKE_URI, "MODEL_URL_EXPIRES_SECONDS": "120"}, monkeypatch, "model_app")


def test_a_signed_in_app_downloads_the_current_model_by_a_short_lived_url(aws, handler, lambda_context):
    # GIVEN a published app model
    publish(aws, pointer())
    # WHEN a signed-in user asks for it
    answer = handler.lambda_handler(request({"sub": SUBJECT}), lambda_context)
    # THEN it gets the version, checksum, size, input spec and URLs valid for two minutes
    assert answer["statusCode"] == 200 and answer["headers"]["cache-control"] == "no-store"
    body = json.loads(answer["body"])
    assert (body["version"], body["size"], body["expires_in"]) == (VERSION, len(MODEL), 120)
    assert body["input"]["dtype"] == "uint8" and "model_key" not in body
    assert parse_qs(urlparse(body["model_url"]).query)["X-Amz-Expires"] == ["120"]
    # AND the URL returns the model bytes, whose SHA-256 the app checks against the answer
    downloaded = requests.get(body["model_url"], timeout=10).content
    assert hashlib.sha256(downloaded).hexdigest() == body["sha256"]
    assert requests.get(body["labels_url"], timeout=10).text.split() == ["apple", "lemon"]


def test_an_anonymous_request_gets_no_url(aws, handler, lambda_context):
    publish(aws, pointer())
    for claims in (None, {"sub": "not-a-cognito-subject"}):
        answer = handler.lambda_handler(request(claims), lambda_context)
        assert answer["statusCode"] == 403 and "url" not in answer["body"]


def test_no_model_yet_is_a_404(aws, handler, lambda_context):
    answer = handler.lambda_handler(request({"sub": SUBJECT}), lambda_context)
    assert answer["statusCode"] == 404 and "no app model" in json.loads(answer["body"])["message"]


@pytest.mark.parametrize(
    "bad",
    [
        b"{broken",
        json.dumps(pointer(model=f"{contracts.CLEAN_PREFIX}dt=2024-05-01/{'a' * 32}.jpg")).encode(),
        json.dumps(pointer(labels="models/app/../labels.txt")).encode(),
    ],
)
def test_a_pointer_that_is_unreadable_or_names_another_object_signs_nothing(
    aws, handler, lambda_context, bad
):
    publish(aws, bad)
    answer = handler.lambda_handler(request({"sub": SUBJECT}), lambda_context)
    assert answer["statusCode"] == 503 and "url" not in answer["body"]
