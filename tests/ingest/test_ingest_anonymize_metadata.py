"""Pure rules: geohash, pseudonyms, hour truncation, label vocabulary, metadata validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from fruits_ingest.anonymize import geohash, subject_id, truncate_to_hour
from fruits_ingest.labels import LabelVocabulary, VocabularyError, default_vocabulary
from fruits_ingest.metadata import InvalidMetadata, UploadMetadata
from fruits_ingest.metadata import parse_upload_metadata as parse_with_vocabulary

NOW = datetime(2025, 6, 14, 9, 30, tzinfo=UTC)
VOCABULARY = default_vocabulary()


def parse_upload_metadata(raw, now):
    return parse_with_vocabulary(raw, now, VOCABULARY)


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
    ("raw", "label"),
    [
        ("Red Apple", "red-apple"),
        ("  RED_apple  ", "red-apple"),
        ("\uff32\uff25\uff24 \uff21\uff30\uff30\uff2c\uff25", "red-apple"),  # fullwidth RED APPLE: NFKC
        ("Pêche de vigne", "vine-peach"),
        ("ЯБЛОКО", "apple"),  # Cyrillic, casefolded
        ("Μήλο", "apple"),  # Greek
        ("تفاح", "apple"),  # Arabic
        ("りんご", "apple"),  # Japanese
        ("🍎", "apple"),
        ("🍎\ufe0f", "apple"),
        ("Lemon", "lemon"),
    ],
)
def test_label_in_any_script_maps_to_its_vocabulary_label(raw, label):
    assert VOCABULARY.match(raw) == label


@pytest.mark.parametrize(
    "raw",
    [
        "Jane Doe 0612345678",
        "jane.doe@example.org",
        "<script>alert(1)</script>",
        "../../etc/passwd",
        "${jndi:ldap://attacker/a}",
        "apple'; DROP TABLE labels;--",
        "apple\x00",
        "apple\nlevel=ERROR fake log line",
        "apple\u202ereversed",
        "",
        "---",
        "apple " * 20,
    ],
)
def test_label_outside_the_vocabulary_matches_nothing(raw):
    assert VOCABULARY.match(raw) is None


def test_unknown_label_is_dropped_not_rejected():
    # GIVEN a label that is personal data WHEN parsed THEN the metadata is valid, the label null and flagged
    parsed = parse_upload_metadata({"label": "Jane Doe 0612345678", "user-id": "u1"}, NOW)
    assert isinstance(parsed, UploadMetadata)
    assert parsed.label is None and parsed.label_unknown
    assert "Jane" not in repr(parsed)


def test_label_flag_cannot_be_set_from_metadata():
    parsed = parse_upload_metadata({"label_unknown": "true"}, NOW)
    assert isinstance(parsed, UploadMetadata) and parsed.label_unknown is False


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"Red Apple": []}, "slug"),
        ({"apple": "pomme"}, "list of strings"),
        ({"apple": ["x"], "pear": ["X"]}, "names two labels"),
        ({"apple": [" "]}, "empty"),
        ({}, "empty"),
    ],
)
def test_malformed_vocabulary_is_refused(entries, message):
    with pytest.raises(VocabularyError, match=message):
        LabelVocabulary.from_mapping(entries)


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
    assert parsed.model_dump() == {
        **dict.fromkeys(["user_id", "device_id", "captured_at", "lat", "lon", "label", "app_version"]),
        "label_unknown": False,
    }


def test_prefixed_and_mixed_case_keys_are_accepted():
    parsed = parse_upload_metadata({"X-Amz-Meta-Label": "Lemon", "x-amz-meta-lat": "1", "LON": "2"}, NOW)
    assert isinstance(parsed, UploadMetadata)
    assert (parsed.label, parsed.lat, parsed.lon) == ("lemon", 1.0, 2.0)


def test_rfc2047_encoded_value_is_decoded():
    # GIVEN a label as S3 returns non-ASCII metadata WHEN parsed THEN it is decoded before matching
    parsed = parse_upload_metadata({"label": "=?utf-8?b?UMOqY2hl?="}, NOW)
    assert isinstance(parsed, UploadMetadata) and parsed.label == "peach"


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
        ({"app-version": "latest"}, "app-version"),
        ({"app-version": "1.2.3; curl evil"}, "app-version"),
        ({"app-version": "2.3.1-SM-G991B"}, "app-version"),  # a device model in a free suffix
        ({"app-version": "2.3.1+build.Jane-Pixel-7"}, "app-version"),
        ({"app-version": "v2.3.1"}, "app-version"),
        ({"app-version": "2.3"}, "app-version"),
        ({"app-version": "02.3.1"}, "app-version"),
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
