"""The authenticated upload path: Cognito identity -> presigned POST under uploads/<sub>/ -> ingest.

moto plays Cognito (a real user pool, user and tokens) and S3. The HTTP API's JWT authorizer is
AWS's: the tests hand the handler the claims it would pass on (requestContext.authorizer.jwt.claims).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json

import boto3
import pytest
import requests
from fruits_ingest.identity import new_upload_key, subject_from_key
from fruits_ingest.presign import PresignConfig, PresignRefused, grant_for
from PIL import Image

from fruits_core import contracts

from .helpers import LAKE_URI, REGION, TEST_PSEUDONYM_KEY, UPLOADS_BUCKET, cold_start, failed_ids, sqs_event

LAKE_PREFIX = LAKE_URI.split("/", 3)[3] + "/"
SUBJECT = "0b6c1c9e-5f43-4a8e-9a51-0d9c6f1e2a77"
CONFIG = PresignConfig(uploads_bucket=UPLOADS_BUCKET, max_upload_bytes=1_000_000)


def _api_event(claims: dict | None, body: object) -> dict:
    """An HTTP API (payload 2.0) request as API Gateway hands it on after the JWT authorizer."""
    context = {"authorizer": {"jwt": {"claims": claims, "scopes": None}}} if claims is not None else {}
    return {
        "version": "2.0",
        "routeKey": "POST /uploads",
        "requestContext": {**context, "http": {"method": "POST", "path": "/uploads"}},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def _claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _photo(color: tuple[int, int, int] = (220, 120, 0)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def cognito_user(aws) -> dict:
    """A confirmed user of a moto user pool, and the claims of the ID token it signs in with."""
    idp = boto3.client("cognito-idp", region_name=REGION)
    pool = idp.create_user_pool(PoolName="fruits-test", UsernameAttributes=["email"])["UserPool"]["Id"]
    client = idp.create_user_pool_client(
        UserPoolId=pool, ClientName="app", ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    idp.admin_create_user(UserPoolId=pool, Username="jane.doe@example.org", MessageAction="SUPPRESS")
    idp.admin_set_user_password(
        UserPoolId=pool, Username="jane.doe@example.org", Password="Str0ng-Passw0rd!", Permanent=True
    )
    tokens = idp.admin_initiate_auth(
        UserPoolId=pool,
        ClientId=client,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "jane.doe@example.org", "PASSWORD": "Str0ng-Passw0rd!"},
    )["AuthenticationResult"]
    return _claims_of(tokens["IdToken"])


def test_grant_binds_the_key_to_the_callers_prefix_size_and_type():
    grant = grant_for(_api_event({"sub": SUBJECT}, {"content_type": "image/png"}), CONFIG)
    assert grant.key.startswith(contracts.upload_prefix(SUBJECT)) and grant.key.endswith(".png")
    assert subject_from_key(grant.key) == SUBJECT
    assert ["content-length-range", 1, 1_000_000] in grant.conditions
    assert {"Content-Type": "image/png"} in grant.conditions
    signed_metadata = {c[1] for c in grant.conditions if isinstance(c, list) and c[0] == "starts-with"}
    assert f"$x-amz-meta-{contracts.META_USER_ID}" not in signed_metadata
    assert f"$x-amz-meta-{contracts.META_LABEL}" in signed_metadata


@pytest.mark.parametrize(
    ("claims", "body", "status"),
    [
        (None, {"content_type": "image/jpeg"}, 403),
        ({}, {"content_type": "image/jpeg"}, 403),
        ({"sub": "../other-user"}, {"content_type": "image/jpeg"}, 403),
        ({"sub": SUBJECT}, {"content_type": "image/gif"}, 400),
        ({"sub": SUBJECT}, "not an object", 400),
        ({"sub": SUBJECT}, {"content_type": ["image/jpeg"]}, 400),
        ({"sub": SUBJECT}, {"content_type": {"image/jpeg": 1}}, 400),
        ({"sub": SUBJECT}, {"content_type": 1}, 400),
        ({"sub": SUBJECT}, ["image/jpeg"], 400),
        ({"sub": SUBJECT}, None, 400),
        ({"sub": f"{SUBJECT}\n"}, {"content_type": "image/jpeg"}, 403),
        ({"sub": SUBJECT.upper()}, {"content_type": "image/jpeg"}, 403),
    ],
)
def test_request_without_identity_or_with_a_bad_type_is_refused(claims, body, status):
    with pytest.raises(PresignRefused) as refused:
        grant_for(_api_event(claims, body), CONFIG)
    assert refused.value.status == status


def test_authenticated_upload_is_ingested_under_the_callers_pseudonym(
    aws, cognito_user, monkeypatch, lambda_context
):
    # GIVEN a signed-in Cognito user asking the upload API for an upload URL
    presign = cold_start({"UPLOADS_BUCKET": UPLOADS_BUCKET}, monkeypatch, module="presign_app")
    answer = presign.lambda_handler(_api_event(cognito_user, {"content_type": "image/jpeg"}), lambda_context)
    assert answer["statusCode"] == 200
    grant = json.loads(answer["body"])
    policy = json.loads(base64.b64decode(grant["fields"]["policy"]))
    assert {"key": grant["key"]} in policy["conditions"]
    assert grant["key"].startswith(contracts.upload_prefix(cognito_user["sub"]))

    # WHEN the app posts the photo, claiming someone else's user-id in the metadata
    photo = _photo()
    fields = {**grant["fields"], "x-amz-meta-user-id": "someone-else", "x-amz-meta-label": "Apple"}
    posted = requests.post(grant["url"], data=fields, files={"file": ("x.jpg", photo)}, timeout=10)
    assert posted.status_code in (200, 204), posted.text
    etag = aws.s3.head_object(Bucket=UPLOADS_BUCKET, Key=grant["key"])["ETag"].strip('"')
    ingest = cold_start(
        {"LAKE_URI": LAKE_URI, "PSEUDONYM_KEY": TEST_PSEUDONYM_KEY, "IDENTITY_FROM_KEY": "true"}, monkeypatch
    )
    response = ingest.lambda_handler(sqs_event([(grant["key"], etag, len(photo))]), lambda_context)

    # THEN the manifest's subject is the pseudonym of the verified sub, never of the declared user-id
    assert failed_ids(response) == []
    (manifest_key,) = [k for k in aws.lake_keys() if k.startswith(LAKE_PREFIX + contracts.MANIFESTS_PREFIX)]
    manifest = aws.lake_json(manifest_key)
    expected = hmac.new(TEST_PSEUDONYM_KEY.encode(), cognito_user["sub"].encode(), hashlib.sha256).hexdigest()
    assert manifest["subject_id"] == expected
    assert manifest["label"] == "apple"


@pytest.mark.parametrize(
    "key",
    [
        "uploads/photo.jpg",  # outside any subject's prefix
        f"uploads/{SUBJECT}/IMG_0001.jpg",  # a name the upload API never hands out
        f"uploads/{SUBJECT}/sub/{'0' * 32}.jpg",
    ],
)
def test_upload_outside_an_issued_key_is_quarantined(aws, monkeypatch, lambda_context, key):
    ingest = cold_start(
        {"LAKE_URI": LAKE_URI, "PSEUDONYM_KEY": TEST_PSEUDONYM_KEY, "IDENTITY_FROM_KEY": "true"}, monkeypatch
    )
    photo = _photo()
    etag = aws.upload(key, photo, {"user-id": "jane"})
    response = ingest.lambda_handler(sqs_event([(key, etag, len(photo))]), lambda_context)
    assert failed_ids(response) == []
    (record_key,) = aws.lake_keys()
    assert aws.lake_json(record_key)["reason"] == contracts.QuarantineReason.NO_IDENTITY.value


def test_a_key_with_a_trailing_newline_names_no_subject():
    key = new_upload_key(SUBJECT, "image/jpeg")
    assert subject_from_key(key) == SUBJECT
    assert subject_from_key(f"{key}\n") is None


def test_issued_keys_are_unique_and_parse_back():
    keys = {new_upload_key(SUBJECT, "image/webp") for _ in range(100)}
    assert len(keys) == 100
    assert {subject_from_key(key) for key in keys} == {SUBJECT}


def test_a_presigned_post_sent_twice_is_ingested_once(aws, cognito_user, monkeypatch, lambda_context):
    # GIVEN the versioned uploads bucket (as deployed) and one presigned POST
    aws.s3.put_bucket_versioning(Bucket=UPLOADS_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    presign = cold_start({"UPLOADS_BUCKET": UPLOADS_BUCKET}, monkeypatch, module="presign_app")
    grant = json.loads(
        presign.lambda_handler(_api_event(cognito_user, {"content_type": "image/jpeg"}), lambda_context)[
            "body"
        ]
    )
    # WHEN the app (or anyone holding it) posts through it twice, a different photo each time
    photos = [_photo(), _photo(color=(10, 20, 200))]
    for photo in photos:
        posted = requests.post(
            grant["url"], data=grant["fields"], files={"file": ("x.jpg", photo)}, timeout=10
        )
        assert posted.status_code in (200, 204), posted.text
    versions = aws.s3.list_object_versions(Bucket=UPLOADS_BUCKET, Prefix=grant["key"])["Versions"]
    first, second = sorted(versions, key=lambda version: version["LastModified"])  # order: either
    s3_calls = _count_s3_calls(aws)
    ingest = cold_start(
        {"LAKE_URI": LAKE_URI, "PSEUDONYM_KEY": TEST_PSEUDONYM_KEY, "IDENTITY_FROM_KEY": "true"}, monkeypatch
    )

    def deliver(version: dict, receive_count: int = 1) -> None:
        event = sqs_event([(grant["key"], version["ETag"].strip('"'), version["Size"])], version["VersionId"])
        event["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(receive_count)
        assert failed_ids(ingest.lambda_handler(event, lambda_context)) == []

    # THEN (events out of order) the first one handled is ingested, by the usual calls and no listing
    deliver(second)
    assert "ListObjectVersions" not in s3_calls
    assert s3_calls.count("PutObject") == 2  # the clean image and the manifest: one write each
    # AND the other one is refused by the clean image's conditional write, also when redelivered
    deliver(first)
    deliver(first, receive_count=2)
    manifests = [k for k in aws.lake_keys() if k.startswith(LAKE_PREFIX + contracts.MANIFESTS_PREFIX)]
    assert len(manifests) == 1
    clean_key = aws.lake_json(manifests[0])["image_uri"].split("/", 3)[3]
    with Image.open(io.BytesIO(aws.lake_object(clean_key))) as clean:
        # the photo whose version was delivered first (an S3 ETag is the MD5 of a one-part upload)
        first_photo = hashlib.md5(photos[0]).hexdigest()  # noqa: S324
        colour = (220, 120, 0) if second["ETag"].strip('"') == first_photo else (10, 20, 200)
        assert clean.convert("RGB").getpixel((10, 10)) == pytest.approx(colour, abs=4)
    # AND both raw versions are deleted (the accepted one after its manifest, the replay as refused)
    assert "Versions" not in aws.s3.list_object_versions(Bucket=UPLOADS_BUCKET, Prefix=grant["key"])
    assert "ListObjectVersions" not in s3_calls


def _count_s3_calls(aws) -> list[str]:
    """The names of the S3 operations made from now on (the ingest's, in these tests)."""
    calls: list[str] = []
    aws.on_session("before-call.s3", lambda model, **_: calls.append(model.name))
    return calls


def test_the_daily_upload_quota_is_counted_per_user_in_dynamodb(
    aws, cognito_user, monkeypatch, lambda_context
):
    # GIVEN the quota table and a quota of 2 uploads a day
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName="quota",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    presign = cold_start(
        {"UPLOADS_BUCKET": UPLOADS_BUCKET, "UPLOAD_QUOTA_TABLE": "quota", "DAILY_UPLOAD_QUOTA": "2"},
        monkeypatch,
        module="presign_app",
    )
    other_user = {**cognito_user, "sub": SUBJECT}
    request = {"content_type": "image/jpeg"}
    # WHEN the user asks three times, and another user once
    answers = [presign.lambda_handler(_api_event(cognito_user, request), lambda_context) for _ in range(3)]
    other = presign.lambda_handler(_api_event(other_user, request), lambda_context)
    # THEN the third is refused with 429; the other user is not affected; no sub is stored in clear
    assert [answer["statusCode"] for answer in answers] == [200, 200, 429]
    assert other["statusCode"] == 200
    items = dynamodb.scan(TableName="quota")["Items"]
    assert sorted(int(item["uploads"]["N"]) for item in items) == [1, 2]
    assert not [item for item in items if cognito_user["sub"] in json.dumps(item)]


def test_an_out_of_range_quota_is_a_configuration_error(monkeypatch):
    from fruits_ingest.config import ConfigError
    from fruits_ingest.presign import load_presign_config

    with pytest.raises(ConfigError, match="DAILY_UPLOAD_QUOTA"):
        load_presign_config({"UPLOADS_BUCKET": UPLOADS_BUCKET, "DAILY_UPLOAD_QUOTA": "0"})
